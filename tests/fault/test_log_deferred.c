// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Messages said under a library lock (lib/log.c): they wait until the
 * thread holds none, none is lost that matters, none runs into the next.
 * White-box: this binary is built from the library's sources, so it takes
 * a library lock and says things as library code does.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "internal.h"

Suite *log_deferred_suite(void);

static struct {
	unsigned int n, warns;
	char last_warn[512], all[8192];
	bool under_lock;		/* the hook ran while we held it */
	unsigned int locks_at_hook;	/* the library's count, then */
} seen;
static unsigned int held_here;	/* the test's own view */

static int capture(enum sva_print_level level, const char *fmt, va_list ap)
{
	char msg[512];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (held_here)
		seen.under_lock = true;
	seen.locks_at_hook = sva__locks_held;
	seen.n++;
	if (level == SVA_WARN) {
		seen.warns++;
		strcpy(seen.last_warn, msg);
	}
	strncat(seen.all, msg, sizeof(seen.all) - strlen(seen.all) - 1);
	return 0;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void locked(void)
{
	sva__mutex_lock(&lock);
	held_here = 1;
}

static void unlocked(void)
{
	held_here = 0;
	sva__mutex_unlock(&lock);
}

static void setup(void)
{
	memset(&seen, 0, sizeof(seen));
	sva_set_print(capture);
}

static void teardown(void)
{
	sva_set_print(NULL);
}

/* Nothing reaches the hook until the last lock goes; all of it then. */
START_TEST(test_log_deferred_until_unlock)
{
	static pthread_mutex_t inner = PTHREAD_MUTEX_INITIALIZER;

	locked();
	pr_warn("one\n");
	sva__mutex_lock(&inner);
	pr_warn("two\n");
	ck_assert_uint_eq(sva__locks_held, 2);
	sva__mutex_unlock(&inner);
	ck_assert_uint_eq(seen.n, 0);
	unlocked();
	ck_assert_uint_eq(seen.n, 2);
	ck_assert(!seen.under_lock);
	ck_assert_str_eq(seen.all, "libsva: one\nlibsva: two\n");
	ck_assert_uint_eq(sva__locks_held, 0);
}
END_TEST

/*
 * More than fit: a warning takes a debug message's place (the default
 * hook shows warnings only), and the hook is told how many went.
 */
START_TEST(test_log_deferred_warning_outlives_debug_flood)
{
	locked();
	for (int i = 0; i < 40; i++)
		pr_debug("page %d not moved back\n", i);
	pr_warn("the one that matters\n");
	unlocked();
	ck_assert_uint_eq(seen.warns, 2);	/* it, and the count */
	ck_assert_msg(strstr(seen.all, "libsva: the one that matters\n"),
		      "lost: %s", seen.all);
	ck_assert_msg(strstr(seen.last_warn, "25 more messages said under a lock dropped"),
		      "count: %s", seen.last_warn);
	ck_assert(!seen.under_lock);
}
END_TEST

/* A message too long is cut, says so, and keeps its line. */
START_TEST(test_log_deferred_long_message_cut_not_merged)
{
	char big[1024];

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	locked();
	pr_warn("%s\n", big);
	pr_warn("next\n");
	unlocked();
	ck_assert_uint_eq(seen.n, 2);
	ck_assert_msg(strstr(seen.all, "xxx...\nlibsva: next\n"), "%s",
		      seen.all + strlen(seen.all) - 40);
}
END_TEST

static struct timespec in_ms(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += ms % 1000 * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

/*
 * A thread about to sleep on a condition, its one lock held, says what it
 * said under it first (its lock dropped for the hook), not at its next
 * wake-up: a library thread sleeps there most of its life. From a review
 * of the print hook (finding 7): no library thread says anything between
 * taking its lock and sleeping today; this keeps a message added there
 * from waiting for the next wake-up.
 */
START_TEST(test_regress_log_said_before_cond_wait)
{
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	struct timespec ts = in_ms(5000);

	locked();
	pr_warn("before sleeping\n");
	ck_assert_uint_eq(seen.n, 0);
	/* Nobody signals: it returns as woken, having said it. */
	ck_assert_int_eq(sva__cond_timedwait(&cv, &lock, &ts), 0);
	ck_assert_uint_eq(seen.n, 1);
	ck_assert_uint_eq(seen.locks_at_hook, 0);
	ck_assert_uint_eq(sva__locks_held, 1);
	/* Nothing pending: a real wait. */
	ts = in_ms(10);
	ck_assert_int_eq(sva__cond_timedwait(&cv, &lock, &ts), ETIMEDOUT);
	unlocked();
	ck_assert_uint_eq(seen.n, 1);
	ck_assert_str_eq(seen.all, "libsva: before sleeping\n");
}
END_TEST

/* Another lock held too: the wait can't drop it, the message waits. */
START_TEST(test_log_deferred_cond_wait_under_two_locks)
{
	static pthread_mutex_t outer = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	struct timespec ts = in_ms(10);

	sva__mutex_lock(&outer);
	locked();
	pr_warn("under two\n");
	ck_assert_int_eq(sva__cond_timedwait(&cv, &lock, &ts), ETIMEDOUT);
	ck_assert_uint_eq(seen.n, 0);
	unlocked();
	ck_assert_uint_eq(seen.n, 0);
	sva__mutex_unlock(&outer);
	ck_assert_uint_eq(seen.n, 1);
	ck_assert_uint_eq(seen.locks_at_hook, 0);
}
END_TEST

Suite *log_deferred_suite(void)
{
	Suite *s = suite_create("log-deferred");
	TCase *tc = tcase_create("log-deferred");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_log_deferred_until_unlock);
	tcase_add_test(tc, test_log_deferred_warning_outlives_debug_flood);
	tcase_add_test(tc, test_log_deferred_long_message_cut_not_merged);
	tcase_add_test(tc, test_regress_log_said_before_cond_wait);
	tcase_add_test(tc, test_log_deferred_cond_wait_under_two_locks);
	suite_add_tcase(s, tc);
	return s;
}
