// SPDX-License-Identifier: MIT
/*
 * ui.c - serves the dashboard (ui/, embedded by agent/ui_assets.c) under /ui/.
 *
 * The page is static: everything it shows comes from the API with the token
 * the user signed in with, which lives in the page's memory only. So this file
 * needs no authentication of its own; what it must get right is that a browser
 * runs nothing but these files: a strict Content-Security-Policy (no inline
 * script or style, nothing from another origin, no framing), nosniff and exact
 * content types. Assets are revalidated on every load (no-cache + a strong ETag
 * of the bytes), so an upgraded agent never serves a stale app.js with a fresh
 * index.html.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include "ui.h"

/* agent/ui_assets.c */
#define LT_UI_EXTERN(sym) extern const char sym[], sym##_end[]
LT_UI_EXTERN(lt_ui_index_html);
LT_UI_EXTERN(lt_ui_app_js);
LT_UI_EXTERN(lt_ui_app_css);
LT_UI_EXTERN(lt_ui_uplot_js);
LT_UI_EXTERN(lt_ui_uplot_css);

struct lt_ui_asset {
	const char *path; /* under /ui/ */
	const char *ctype;
	const char *start, *end;
	char etag[20]; /* "<16 hex digits>" of FNV-1a 64 over the bytes, set once */
};

static struct lt_ui_asset lt_ui_assets[] = {
	{ "", "text/html; charset=utf-8", lt_ui_index_html, lt_ui_index_html_end, "" },
	{ "index.html", "text/html; charset=utf-8", lt_ui_index_html, lt_ui_index_html_end, "" },
	{ "app.js", "text/javascript; charset=utf-8", lt_ui_app_js, lt_ui_app_js_end, "" },
	{ "app.css", "text/css; charset=utf-8", lt_ui_app_css, lt_ui_app_css_end, "" },
	{ "uplot.js", "text/javascript; charset=utf-8", lt_ui_uplot_js, lt_ui_uplot_js_end, "" },
	{ "uplot.css", "text/css; charset=utf-8", lt_ui_uplot_css, lt_ui_uplot_css_end, "" },
};
#define LT_UI_N (sizeof(lt_ui_assets) / sizeof(lt_ui_assets[0]))

/* default-src 'none' is stricter than 'self': only what is listed may load. */
static const char *const lt_ui_headers[] = {
	"Content-Security-Policy",
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
	"X-Content-Type-Options",
	"nosniff",
	"X-Frame-Options",
	"DENY",
	"Referrer-Policy",
	"no-referrer",
	"Cross-Origin-Opener-Policy",
	"same-origin",
	"Cross-Origin-Resource-Policy",
	"same-origin",
	NULL,
};

static pthread_once_t lt_ui_once = PTHREAD_ONCE_INIT;

static void lt_ui_init(void)
{
	unsigned i;

	for (i = 0; i < LT_UI_N; i++) {
		__u64 h = 0xcbf29ce484222325ull;
		const unsigned char *p;

		for (p = (const unsigned char *)lt_ui_assets[i].start;
		     p < (const unsigned char *)lt_ui_assets[i].end; p++)
			h = (h ^ *p) * 0x100000001b3ull;
		snprintf(lt_ui_assets[i].etag, sizeof(lt_ui_assets[i].etag), "\"%016llx\"",
			 (unsigned long long)h);
	}
}

/* Queues status with body (static, not copied) and the page's security headers. */
static enum MHD_Result lt_ui_reply(struct lt_req *r, unsigned status, const char *ctype,
				   const char *body, size_t len, const char *etag,
				   const char *const *more)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;
	int i;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	if (ctype)
		MHD_add_response_header(resp, "Content-Type", ctype);
	for (i = 0; lt_ui_headers[i]; i += 2)
		MHD_add_response_header(resp, lt_ui_headers[i], lt_ui_headers[i + 1]);
	for (i = 0; more && more[i]; i += 2)
		MHD_add_response_header(resp, more[i], more[i + 1]);
	if (etag) {
		MHD_add_response_header(resp, "ETag", etag);
		MHD_add_response_header(resp, "Cache-Control", "no-cache");
	} else {
		MHD_add_response_header(resp, "Cache-Control", "no-store");
	}
	r->status = (int)status;
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* If-None-Match: "*" or a list that holds our tag (weak or strong: RFC 9110 13.1.2). */
static int lt_ui_not_modified(struct lt_req *r, const char *etag)
{
	const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");

	return inm && (!strcmp(inm, "*") || strstr(inm, etag));
}

enum MHD_Result lt_ui_serve(struct lt_req *r)
{
	static const char moved[] = "the dashboard is at /ui/\n";
	static const char missing[] = "no such file in the dashboard\n";
	static const char *const loc[] = { "Location", "/ui/", NULL };
	static const char *const allow[] = { "Allow", "GET, HEAD", NULL };
	const char *rest;
	unsigned i;

	if (strcmp(r->method, "GET") && strcmp(r->method, "HEAD"))
		return lt_ui_reply(r, 405, "text/plain; charset=utf-8", "use GET\n", 8, NULL,
				   allow);
	/* /ui: the relative asset URLs of index.html need the slash */
	if (!strcmp(r->url, "/ui"))
		return lt_ui_reply(r, 308, "text/plain; charset=utf-8", moved, sizeof(moved) - 1,
				   NULL, loc);
	if (strncmp(r->url, "/ui/", 4))
		return lt_ui_reply(r, 404, "text/plain; charset=utf-8", missing,
				   sizeof(missing) - 1, NULL, NULL);
	rest = r->url + 4;
	pthread_once(&lt_ui_once, lt_ui_init);
	for (i = 0; i < LT_UI_N; i++) {
		const struct lt_ui_asset *a = &lt_ui_assets[i];

		if (strcmp(rest, a->path))
			continue;
		if (lt_ui_not_modified(r, a->etag))
			return lt_ui_reply(r, 304, NULL, "", 0, a->etag, NULL);
		return lt_ui_reply(r, 200, a->ctype, a->start, (size_t)(a->end - a->start), a->etag,
				   NULL);
	}
	return lt_ui_reply(r, 404, "text/plain; charset=utf-8", missing, sizeof(missing) - 1, NULL,
			   NULL);
}
