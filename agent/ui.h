/* SPDX-License-Identifier: MIT */
/*
 * ui.h - the dashboard (issue #11) on the agent's API listener: /ui/ serves
 * the single-page app embedded at build time (agent/ui_assets.c). Used by
 * agent/api.c's route table only.
 */
#ifndef LT_UI_H
#define LT_UI_H

#include "httpd.h"

/* GET or HEAD /ui and anything under it; the page's data comes from the API. */
enum MHD_Result lt_ui_serve(struct lt_req *r);

#endif
