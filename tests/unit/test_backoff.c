#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backoff.h"

static const struct backoff_policy unlimited = {
	.initial = 0.1, .max = 10, .burst = 0, .interval = 0};

/* Records an exit at now after uptime seconds and returns the delay; it must be allowed. */
static double next(struct backoff *b, const struct backoff_policy *p, double now, double uptime)
{
	double delay = -1;
	assert_true(backoff_next(b, p, now, uptime, &delay));
	return delay;
}

static void first_delay_is_initial(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b);
	assert_true(b.delay == 0);
	assert_float_equal(next(&b, &unlimited, 100, 0.5), 0.1, 1e-12);
	assert_float_equal(b.delay, 0.1, 1e-12);
}

static void delay_doubles(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b);
	assert_float_equal(next(&b, &unlimited, 1, 0), 0.1, 1e-12);
	assert_float_equal(next(&b, &unlimited, 2, 0), 0.2, 1e-12);
	assert_float_equal(next(&b, &unlimited, 3, 0), 0.4, 1e-12);
	assert_float_equal(next(&b, &unlimited, 4, 0), 0.8, 1e-12);
	assert_float_equal(next(&b, &unlimited, 5, 0), 1.6, 1e-12);
}

static void delay_capped_at_max(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b);
	double delay = 0;
	for (int i = 0; i < 50; i++) {
		delay = next(&b, &unlimited, i, 1);
		assert_true(delay <= unlimited.max);
	}
	assert_float_equal(delay, unlimited.max, 1e-12);
	assert_float_equal(next(&b, &unlimited, 51, 1), unlimited.max, 1e-12);
}

static void delay_capped_when_doubling_overshoots(void **state)
{
	(void)state;
	const struct backoff_policy p = {.initial = 3, .max = 10};
	struct backoff b;
	backoff_init(&b);
	assert_float_equal(next(&b, &p, 0, 0), 3, 1e-12);
	assert_float_equal(next(&b, &p, 1, 0), 6, 1e-12);
	assert_float_equal(next(&b, &p, 2, 0), 10, 1e-12);
	assert_float_equal(next(&b, &p, 3, 0), 10, 1e-12);
}

static void delay_resets_after_healthy_run(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b);
	for (int i = 0; i < 6; i++)
		next(&b, &unlimited, i, 1);
	assert_true(b.delay > unlimited.initial);
	assert_float_equal(next(&b, &unlimited, 100, BACKOFF_RESET_AFTER), 0.1, 1e-12);
	assert_float_equal(next(&b, &unlimited, 101, 0.5), 0.2, 1e-12);
}

static void delay_keeps_growing_after_short_run(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b);
	next(&b, &unlimited, 0, 0);
	next(&b, &unlimited, 1, 0);
	assert_float_equal(next(&b, &unlimited, 100, BACKOFF_RESET_AFTER - 0.01), 0.4, 1e-12);
}

static void start_limit_refuses_past_burst(void **state)
{
	(void)state;
	const struct backoff_policy p = {.initial = 0.1, .max = 10, .burst = 3, .interval = 60};
	struct backoff b;
	backoff_init(&b);
	next(&b, &p, 1000, 0);
	next(&b, &p, 1001, 0);
	next(&b, &p, 1002, 0);
	double delay = -1;
	assert_false(backoff_next(&b, &p, 1003, 0, &delay));
	assert_false(backoff_next(&b, &p, 1030, 0, &delay));
}

static void start_limit_new_window_after_interval(void **state)
{
	(void)state;
	const struct backoff_policy p = {.initial = 0.1, .max = 10, .burst = 2, .interval = 10};
	struct backoff b;
	backoff_init(&b);
	next(&b, &p, 500, 0);
	next(&b, &p, 505, 0);
	next(&b, &p, 510, 0);
	next(&b, &p, 519.9, 0);
	double delay = -1;
	assert_false(backoff_next(&b, &p, 519.95, 0, &delay));
}

static void start_limit_window_opens_at_first_restart(void **state)
{
	(void)state;
	const struct backoff_policy p = {.initial = 0.1, .max = 10, .burst = 2, .interval = 10};
	struct backoff b;
	backoff_init(&b);
	next(&b, &p, 3, 0);
	next(&b, &p, 4, 0);
	double delay = -1;
	assert_false(backoff_next(&b, &p, 12, 0, &delay));
}

static void start_limit_allows_exactly_burst(void **state)
{
	(void)state;
	const struct backoff_policy p = {.initial = 1, .max = 10, .burst = 1, .interval = 5};
	struct backoff b;
	backoff_init(&b);
	double delay = -1;
	assert_true(backoff_next(&b, &p, 10, 0, &delay));
	assert_float_equal(delay, 1, 1e-12);
	assert_false(backoff_next(&b, &p, 11, 0, &delay));
	assert_true(backoff_next(&b, &p, 15, 0, &delay));
}

static void burst_zero_is_unlimited(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b);
	for (int i = 0; i < 10000; i++) {
		double delay = -1;
		assert_true(backoff_next(&b, &unlimited, 5, 0, &delay));
		assert_true(delay > 0);
	}
}

static void init_clears_history(void **state)
{
	(void)state;
	const struct backoff_policy p = {.initial = 0.1, .max = 10, .burst = 1, .interval = 60};
	struct backoff b;
	backoff_init(&b);
	next(&b, &p, 0, 0);
	backoff_init(&b);
	assert_float_equal(next(&b, &p, 1, 0), 0.1, 1e-12);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(first_delay_is_initial),
		cmocka_unit_test(delay_doubles),
		cmocka_unit_test(delay_capped_at_max),
		cmocka_unit_test(delay_capped_when_doubling_overshoots),
		cmocka_unit_test(delay_resets_after_healthy_run),
		cmocka_unit_test(delay_keeps_growing_after_short_run),
		cmocka_unit_test(start_limit_refuses_past_burst),
		cmocka_unit_test(start_limit_new_window_after_interval),
		cmocka_unit_test(start_limit_window_opens_at_first_restart),
		cmocka_unit_test(start_limit_allows_exactly_burst),
		cmocka_unit_test(burst_zero_is_unlimited),
		cmocka_unit_test(init_clears_history),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
