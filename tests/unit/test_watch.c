/*
 * test_watch.c - handler calls that run too long: the workers' busy marks
 * (exec/workers.c), the warning schedule of wd_delivery_watch
 * (exec/delivery.c: at handler_timeout_warn, then each time the call's age
 * doubles, counted once), and how RabbitMQ's consumer_timeout close is told
 * from other channel closes (broker/broker.c).
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <semaphore.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "broker/broker.h"
#include "exec/delivery.h"
#include "exec/workers.h"

/* ---- recognising the broker's consumer_timeout ---------------------------
 */

static bool is_timeout(int code, const char *text)
{
	return wd_broker_is_consumer_timeout(code, amqp_cstring_bytes(text));
}

Test(consumer_timeout, rabbitmq_3_10_text_is_recognised)
{
	cr_expect(is_timeout(406, "PRECONDITION_FAILED - delivery "
	                          "acknowledgement on channel 3 timed out. "
	                          "Timeout value used: 1800000 ms. This "
	                          "timeout value can be configured, see "
	                          "consumers doc guide to learn more"));
}

Test(consumer_timeout, other_closes_are_not)
{
	/* Other 406s: a redeclare with other arguments, a bad tag. */
	cr_expect_not(is_timeout(406, "PRECONDITION_FAILED - inequivalent arg "
	                              "'x-message-ttl' for queue 'q' in vhost "
	                              "'/': received none but current is the "
	                              "value '10'"));
	cr_expect_not(is_timeout(406, "PRECONDITION_FAILED - unknown delivery "
	                              "tag 7"));
	/* The words, but not a precondition failure. */
	cr_expect_not(is_timeout(404, "delivery acknowledgement timed out"));
	cr_expect_not(is_timeout(320, "CONNECTION_FORCED - broker forced "
	                              "connection closure with reason "
	                              "'shutdown'"));
	cr_expect_not(is_timeout(406, ""));
	amqp_bytes_t none = {0, NULL};
	cr_expect_not(wd_broker_is_consumer_timeout(406, none));
}

Test(consumer_timeout, text_need_not_be_nul_terminated)
{
	const char t[] = "delivery acknowledgement on channel 1 timed outXXXX";
	amqp_bytes_t cut = {.len = strlen(t) - 4 - 3, .bytes = (void *)t};

	/* Cut before "out": "timed" alone is not enough. */
	cr_expect_not(wd_broker_is_consumer_timeout(406, cut));
	cut.len = strlen(t) - 4;
	cr_expect(wd_broker_is_consumer_timeout(406, cut));
}

/* ---- a worker held in a task ------------------------------------------ */

/* A task that marks its worker busy with `what` for `owner`, says so, and
 * waits to be released. */
struct held {
	struct wd_task task;
	const void *owner;
	void *what;
	size_t n;
	sem_t started, release, finished;
};

static void held_run(struct wd_task *t)
{
	struct held *h = (struct held *)t;

	wd_workers_busy(h->owner, h->what, h->n);
	sem_post(&h->started);
	while (sem_wait(&h->release) < 0 && errno == EINTR)
		;
	wd_workers_idle();
}

static void held_finish(struct wd_task *t)
{
	sem_post(&((struct held *)t)->finished);
}

/* Bounded: 10 s. */
static void wait_sem(sem_t *s, const char *what)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	int rc;
	while ((rc = sem_timedwait(s, &ts)) < 0 && errno == EINTR)
		;
	cr_assert_eq(rc, 0, "%s: not within 10 s", what);
}

static void hold(struct wd_workers *w, struct held *h, const void *owner,
                 void *what, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->task.run = held_run;
	h->task.finish = held_finish;
	h->owner = owner;
	h->what = what;
	h->n = n;
	sem_init(&h->started, 0, 0);
	sem_init(&h->release, 0, 0);
	sem_init(&h->finished, 0, 0);
	wd_workers_submit(w, &h->task, &h->task, 1);
	wait_sem(&h->started, "the held task");
}

static void let_go(struct held *h)
{
	sem_post(&h->release);
	wait_sem(&h->finished, "the held task's finish");
}

struct seen {
	int calls;
	void *what;
	size_t n;
	int64_t since_ms;
};

static void saw(void *what, size_t n, int64_t since_ms, void *arg)
{
	struct seen *s = arg;

	s->calls++;
	s->what = what;
	s->n = n;
	s->since_ms = since_ms;
}

Test(workers_busy, scan_shows_the_owners_busy_workers_only)
{
	struct wd_workers *w = wd_workers_start(2);
	int mine, theirs, item;
	struct held a, b;
	struct seen s = {0};
	int64_t before = wd_now_ms();

	cr_assert_not_null(w);
	hold(w, &a, &mine, &item, 3);
	hold(w, &b, &theirs, &b, 1);
	wd_workers_scan(w, &mine, saw, &s);
	cr_expect_eq(s.calls, 1, "only mine");
	cr_expect_eq(s.what, &item);
	cr_expect_eq(s.n, 3);
	cr_expect(s.since_ms >= before && s.since_ms <= wd_now_ms(),
	          "since %lld", (long long)s.since_ms);
	let_go(&a);
	memset(&s, 0, sizeof(s));
	wd_workers_scan(w, &mine, saw, &s);
	cr_expect_eq(s.calls, 0, "idle once the task is done");
	let_go(&b);
	wd_workers_stop(w);
}

Test(workers_busy, marks_off_a_worker_are_ignored)
{
	/* Not a worker thread (a non-blocking handler on a connection's
	 * thread): nothing to mark, nothing breaks. */
	wd_workers_busy(NULL, NULL, 1);
	wd_workers_idle();
}

/* ---- the warning schedule ------------------------------------------------
 */

struct fake {
	struct wd_conf_plugin pconf;
	struct wd_plugin plugin;
	struct wd_policy policy;
	struct wd_route route;
	struct wd_delivery d;
};

static void fake_init(struct fake *f, long warn_ms)
{
	memset(f, 0, sizeof(*f));
	f->pconf.name = "p";
	f->plugin.conf = &f->pconf;
	f->policy.handler_warn_ms = warn_ms;
	f->route.type = "t";
	f->route.handler_name = "h";
	f->route.plugin = &f->plugin;
	f->route.policy = &f->policy;
	f->route.series = wd_series_route("q", "t", "p", "h");
	cr_assert_not_null(f->route.series);
	f->d.verdict.route = &f->route;
}

#define WARNINGS() ((long)wd_metric_get(handler_timeout_warnings))

Test(delivery_watch, warns_at_the_threshold_then_as_the_age_doubles)
{
	struct wd_workers *w = wd_workers_start(1);
	struct fake f;
	struct held h;
	struct seen s = {0};
	int owner;
	long before = WARNINGS();

	cr_assert_not_null(w);
	fake_init(&f, 1000);
	hold(w, &h, &owner, &f.d, 1);
	wd_workers_scan(w, &owner, saw, &s);
	cr_assert_eq(s.calls, 1);
	int64_t t0 = s.since_ms;

	wd_delivery_watch(w, &owner, 0, t0 + 999);
	cr_expect_eq(f.d.warn_due_ms, 0, "under the threshold: nothing");
	cr_expect_eq(WARNINGS(), before);
	wd_delivery_watch(w, &owner, 0, t0 + 1000);
	cr_expect_eq(f.d.warn_due_ms, 2000, "warned at 1 s, next at 2 s");
	cr_expect_eq(WARNINGS(), before + 1);
	cr_expect_eq(wd_counted(f.route.series->handler_timeout_warnings), 1);
	wd_delivery_watch(w, &owner, 0, t0 + 1500);
	cr_expect_eq(f.d.warn_due_ms, 2000, "not yet due again");
	wd_delivery_watch(w, &owner, 0, t0 + 5000);
	cr_expect_eq(f.d.warn_due_ms, 8000, "a late look skips the missed");
	cr_expect_eq(WARNINGS(), before + 1, "counted once per call");
	cr_expect_eq(wd_counted(f.route.series->handler_timeout_warnings), 1);
	wd_delivery_watch(w, &(int){0}, 0, t0 + 9000);
	cr_expect_eq(f.d.warn_due_ms, 8000, "another owner's look: nothing");
	let_go(&h);
	wd_workers_stop(w);
}

Test(delivery_watch, zero_turns_it_off)
{
	struct wd_workers *w = wd_workers_start(1);
	struct fake f;
	struct held h;
	int owner;
	long before = WARNINGS();

	cr_assert_not_null(w);
	fake_init(&f, 0);
	hold(w, &h, &owner, &f.d, 1);
	wd_delivery_watch(w, &owner, 0, wd_now_ms() + 86400000);
	cr_expect_eq(f.d.warn_due_ms, 0);
	cr_expect_eq(WARNINGS(), before);
	let_go(&h);
	wd_workers_stop(w);
}
