// SPDX-License-Identifier: MIT
/*
 * Embeds the dashboard (ui/ and uPlot from ui/node_modules, which scripts/deps.sh
 * installs with `npm ci` from ui/package-lock.json) in leaky-agent, so /ui fetches
 * nothing at run time. agent/ui.c serves them; the Makefile rebuilds this object
 * when an asset changes. Each asset is lt_ui_<name> .. lt_ui_<name>_end.
 */
#define LT_UI_ASSET(sym, path)                          \
	__asm__(".section .rodata\n"                    \
		".global " #sym "\n"                    \
		".global " #sym "_end\n"                \
		".balign 16\n" #sym ":\n"               \
		".incbin \"" path "\"\n" #sym "_end:\n" \
		".previous\n")

LT_UI_ASSET(lt_ui_index_html, "ui/index.html");
LT_UI_ASSET(lt_ui_app_js, "ui/app.js");
LT_UI_ASSET(lt_ui_app_css, "ui/app.css");
LT_UI_ASSET(lt_ui_uplot_js, "ui/node_modules/uplot/dist/uPlot.iife.min.js");
LT_UI_ASSET(lt_ui_uplot_css, "ui/node_modules/uplot/dist/uPlot.min.css");
