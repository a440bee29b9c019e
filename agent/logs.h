/* SPDX-License-Identifier: MIT */
/*
 * logs.h - the request log API (issue #11): GET /api/v1/logs (filters, a
 * cursor, newest first) and GET /api/v1/logs/{id}, read from requests.db
 * (agent/requests.c writes it; agent/logq.h builds the query).
 *
 * Authorisation: an ADMIN sees every row. Anyone else sees only its own:
 * the rows of its user id, and with an API key (or a token issued for one)
 * only that key's; a filter naming another user, org or key is a 403, and a
 * row that is not its own is a 404, as if it did not exist. A user id of
 * 63 bytes or more (records keep 63: a longer one is cut to a shorter
 * tenant's id) is a 403: its rows cannot be told apart.
 */
#ifndef LT_AGENT_LOGS_H
#define LT_AGENT_LOGS_H

#include <microhttpd.h>

struct lt_req;

/* After an access phase that authenticated r->principal. */
enum MHD_Result lt_logs_list(struct lt_req *r);
enum MHD_Result lt_logs_one(struct lt_req *r);

#endif
