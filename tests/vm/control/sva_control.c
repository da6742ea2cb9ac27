// SPDX-License-Identifier: GPL-2.0
/*
 * The debug VM's positive control: a module with deliberate bugs of each
 * kind the harness must catch. Loaded last, after the real tests, so a
 * harness that has gone blind (a checker compiled out, a grep that no
 * longer matches, a console that is lost) fails the run instead of
 * passing it. Never loaded outside that VM.
 *
 *  - an out-of-bounds read of a kmalloc() object (KASAN);
 *  - two mutexes taken in both orders (lockdep: circular dependency);
 *  - an object allocated and forgotten (kmemleak).
 */
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>

static DEFINE_MUTEX(control_a);
static DEFINE_MUTEX(control_b);

/* Kept out of the compiler's sight so the bad read really happens. */
static char * volatile control_obj;
static void * volatile control_leak;

static noinline void control_kasan(void)
{
	char *p = kmalloc(24, GFP_KERNEL);

	if (!p)
		return;
	control_obj = p;
	pr_info("sva_control: out-of-bounds read follows: %d\n",
		control_obj[24]);
	kfree(p);
}

static noinline void control_lockdep(void)
{
	mutex_lock(&control_a);
	mutex_lock(&control_b);
	mutex_unlock(&control_b);
	mutex_unlock(&control_a);

	mutex_lock(&control_b);
	mutex_lock(&control_a);
	mutex_unlock(&control_a);
	mutex_unlock(&control_b);
}

static noinline void control_kmemleak(void)
{
	control_leak = kmalloc(128, GFP_KERNEL);
	/* Forget it: only a pointer kmemleak can't see remains. */
	control_leak = (void *)((unsigned long)control_leak ^ ~0ul);
}

/*
 * Lockdep first: a KASAN report taints the kernel with
 * LOCKDEP_NOW_UNRELIABLE, which turns lockdep off. The bugs live outside
 * .init.text, so that the reports' backtraces still name this module after
 * its init code is freed.
 */
static int __init control_init(void)
{
	control_lockdep();
	control_kmemleak();
	control_kasan();
	return 0;
}

static void __exit control_exit(void)
{
}

module_init(control_init);
module_exit(control_exit);
MODULE_DESCRIPTION("libsva debug VM positive control: deliberate bugs");
MODULE_LICENSE("GPL");
