// SPDX-License-Identifier: MIT
/* test_failpolicy.c - lib/failpolicy.c: what the gateway does per tier when the maps are gone. */
#include <errno.h>
#include <stdlib.h>
#include "failpolicy.h"
#include "lt_test.h"

static void default_is_closed_for_every_tier(void)
{
	struct lt_fail_policy p;

	lt_fail_policy_init(&p);
	CHECK_EQ(lt_fail_decide(&p, "USER"), LT_FAIL_CLOSED);
	CHECK_EQ(lt_fail_decide(&p, NULL), LT_FAIL_CLOSED);
	CHECK_EQ(p.closed[LT_FAIL_MAX_TIERS], 2);
	CHECK_EQ(p.opened[LT_FAIL_MAX_TIERS], 0);
}

static void per_tier_open_is_let_through_and_counted(void)
{
	struct lt_fail_policy p;
	struct lt_mbuf b = { 0 };
	char err[128];

	lt_fail_policy_init(&p);
	CHECK_EQ(lt_fail_policy_set(&p, "ENTERPRISE", "open", err, sizeof(err)), 0);
	CHECK_EQ(lt_fail_policy_set(&p, "USER", "closed", err, sizeof(err)), 0);
	CHECK_EQ(lt_fail_decide(&p, "ENTERPRISE"), LT_FAIL_OPEN);
	CHECK_EQ(lt_fail_decide(&p, "ENTERPRISE"), LT_FAIL_OPEN);
	CHECK_EQ(lt_fail_decide(&p, "USER"), LT_FAIL_CLOSED);
	CHECK_EQ(lt_fail_decide(&p, "enterprise"), LT_FAIL_CLOSED); /* exact names */
	lt_fail_policy_metrics(&p, &b);
	CHECK(b.p && strstr(b.p, "lt_gateway_fail_open_total{tier=\"ENTERPRISE\"} 2\n"));
	CHECK(b.p && strstr(b.p, "lt_gateway_fail_closed_total{tier=\"USER\"} 1\n"));
	CHECK(b.p && strstr(b.p, "lt_gateway_fail_closed_total{tier=\"*\"} 1\n"));
	CHECK(b.p && strstr(b.p, "# TYPE lt_gateway_fail_open_total counter\n"));
	free(b.p);
}

static void default_can_be_open_and_a_tier_can_stay_closed(void)
{
	struct lt_fail_policy p;
	char err[128];

	lt_fail_policy_init(&p);
	CHECK_EQ(lt_fail_policy_set(&p, "*", "open", err, sizeof(err)), 0);
	CHECK_EQ(lt_fail_policy_set(&p, "FREE", "closed", err, sizeof(err)), 0);
	CHECK_EQ(lt_fail_decide(&p, "PRO"), LT_FAIL_OPEN);
	CHECK_EQ(lt_fail_decide(&p, "FREE"), LT_FAIL_CLOSED);
	CHECK_EQ(lt_fail_policy_set(&p, "FREE", "open", err, sizeof(err)), 0); /* replaced */
	CHECK_EQ(p.n, 1);
	CHECK_EQ(lt_fail_decide(&p, "FREE"), LT_FAIL_OPEN);
}

static void bad_config_is_refused_and_changes_nothing(void)
{
	struct lt_fail_policy p;
	char err[128], t[8];
	int i;

	lt_fail_policy_init(&p);
	CHECK_EQ(lt_fail_policy_set(&p, "USER", "Open", err, sizeof(err)), -EINVAL);
	CHECK(strstr(err, "\"closed\" or \"open\""));
	CHECK_EQ(lt_fail_policy_set(&p, "USER", NULL, err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_fail_policy_set(&p, "US\"ER", "open", err, sizeof(err)), -EINVAL);
	CHECK_EQ(lt_fail_policy_set(&p, "", "open", err, sizeof(err)), -EINVAL);
	CHECK_EQ(p.n, 0);
	CHECK_EQ(lt_fail_decide(&p, "USER"), LT_FAIL_CLOSED);
	for (i = 0; i < LT_FAIL_MAX_TIERS; i++) {
		snprintf(t, sizeof(t), "T%d", i);
		CHECK_EQ(lt_fail_policy_set(&p, t, "open", err, sizeof(err)), 0);
	}
	CHECK_EQ(lt_fail_policy_set(&p, "ONE_MORE", "open", err, sizeof(err)), -ENOSPC);
	CHECK_EQ(lt_fail_decide(&p, "ONE_MORE"), LT_FAIL_CLOSED);
}

int main(void)
{
	RUN(default_is_closed_for_every_tier);
	RUN(per_tier_open_is_let_through_and_counted);
	RUN(default_can_be_open_and_a_tier_can_stay_closed);
	RUN(bad_config_is_refused_and_changes_nothing);
	return lt_t_done();
}
