/* SPDX-License-Identifier: MIT */
/*
 * escalate.h - the gateway's side of escalation to the kernel (lib/escal.h
 * has the rule, the formula and where the state lives): every 429 the
 * gateway answers itself, on any route, is counted against the client's
 * address as the gateway's socket sees it (X-Forwarded-For is never
 * trusted: a client would name someone else), and a source that keeps
 * ignoring Retry-After is banned in lt_penalty, where XDP drops it.
 *
 * Config: the "escalation" object of "admission" (README "Escalation"):
 *   enabled     true (false: nothing is counted or banned)
 *   rejections  50   429s that ignored a Retry-After, within window_s, that ban
 *   window_s    10
 *   ttl_s       30   the first ban; doubles per strike
 *   max_ttl_s   3600 the cap
 *   decay_s     3600 one strike forgotten per decay_s after a ban ended
 *   exempt      ["127.0.0.0/8", "::1/128"]  sources never banned (a local
 *               load balancer in front of the gateway is one address)
 * Read at start; a SIGHUP applies new values to the next 429 (gw_esc_reload).
 */
#ifndef GW_ESCALATE_H
#define GW_ESCALATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include "escal.h"

#define GW_ESC_EXEMPT_MAX 16

struct gw_esc_opts {
	struct lt_esc_policy pol; /* rejections 0 = off */
	unsigned nexempt;
	struct lt_lpm_key exempt[GW_ESC_EXEMPT_MAX];
};

void gw_esc_opts_default(struct gw_esc_opts *o);
/* The "escalation" object (jansson json_t *, NULL = defaults). -EINVAL and err. */
int gw_esc_opts_parse(const void *json_escalation, struct gw_esc_opts *o, char *err, size_t errlen);

/*
 * Keeps the options and opens lt_escal, lt_penalty and lt_config under
 * pin_dir (the master, before the workers fork). Missing pins are not an
 * error: each worker looks for them again, at most once a second, on a 429.
 */
void gw_esc_init(const struct gw_esc_opts *o, const char *pin_dir);
void gw_esc_fini(void);
/* New options in a worker (SIGHUP); the pins stay open, the counts stay. */
void gw_esc_reload(const struct gw_esc_opts *o);

/*
 * The proxy answered 429 to peer: the request's head was complete at
 * arrival_ns (CLOCK_MONOTONIC) and the answer announces wait_ms.
 */
void gw_esc_on_429(const struct sockaddr_storage *peer, uint64_t arrival_ns, uint64_t wait_ms);

#endif
