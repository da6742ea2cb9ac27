// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection: each point fails every Nth call (<point>_every=N) or
 * with a probability in percent (<point>_prob=P), set through the module's
 * parameters in /sys/module/sva_shim/parameters/. The kernel's own fault
 * injection framework is off in the distribution kernels we test on; where
 * it is on (the debug test kernel), fail_function can fail the allocation
 * and fault resolution points too, with its task filter and probability.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/error-injection.h>
#include <linux/moduleparam.h>
#include <linux/random.h>

#include "shim.h"

static unsigned int every[SVA_INJECT_NR];
static unsigned int prob[SVA_INJECT_NR];
static atomic_t calls[SVA_INJECT_NR];
static unsigned int fault_resp = SVA_SHIM_RESP_INVALID;

/* Setting <point>_every restarts its count: the Nth call from now fails. */
static int every_set(const char *val, const struct kernel_param *kp)
{
	unsigned int *n = kp->arg;
	int ret = param_set_uint(val, kp);

	if (!ret)
		atomic_set(&calls[n - every], 0);
	return ret;
}

static const struct kernel_param_ops every_ops = {
	.set = every_set,
	.get = param_get_uint,
};

module_param_cb(bind_every, &every_ops, &every[SVA_INJECT_BIND], 0644);
module_param_named(bind_prob, prob[SVA_INJECT_BIND], uint, 0644);
module_param_cb(pasid_every, &every_ops, &every[SVA_INJECT_PASID], 0644);
module_param_named(pasid_prob, prob[SVA_INJECT_PASID], uint, 0644);
module_param_cb(alloc_every, &every_ops, &every[SVA_INJECT_ALLOC], 0644);
module_param_named(alloc_prob, prob[SVA_INJECT_ALLOC], uint, 0644);
module_param_cb(fault_every, &every_ops, &every[SVA_INJECT_FAULT], 0644);
module_param_named(fault_prob, prob[SVA_INJECT_FAULT], uint, 0644);
module_param(fault_resp, uint, 0644);
MODULE_PARM_DESC(bind_every, "fail every Nth bind (0: never)");
MODULE_PARM_DESC(pasid_every, "fail every Nth PASID allocation");
MODULE_PARM_DESC(alloc_every, "fail every Nth memory allocation");
MODULE_PARM_DESC(fault_every, "fail every Nth fault resolution");
MODULE_PARM_DESC(fault_resp, "injected fault response: 1 INVALID, 2 FAILURE");

bool sva_should_fail(enum sva_inject_point point)
{
	unsigned int n = READ_ONCE(every[point]);
	unsigned int p = READ_ONCE(prob[point]);

	if (n && (unsigned int)atomic_inc_return(&calls[point]) % n == 0)
		return true;
	return p && get_random_u32_below(100) < p;
}

/* -EPERM: the mapping forbids it; -ENOMEM: the MM could not resolve it. */
int sva_inject_fault_error(void)
{
	return READ_ONCE(fault_resp) == SVA_SHIM_RESP_FAILURE ?
		-ENOMEM : -EPERM;
}

/*
 * The allocation and fault resolution points, as functions of their own so
 * that the kernel's fail_function (CONFIG_FUNCTION_ERROR_INJECTION) can
 * make them return an errno: each call site fails exactly as when the
 * module's own knobs fail it.
 */
noinline int sva_inject_alloc(void)
{
	return sva_should_fail(SVA_INJECT_ALLOC) ? -ENOMEM : 0;
}
ALLOW_ERROR_INJECTION(sva_inject_alloc, ERRNO);

noinline int sva_inject_fault(void)
{
	return sva_should_fail(SVA_INJECT_FAULT) ? sva_inject_fault_error() : 0;
}
ALLOW_ERROR_INJECTION(sva_inject_fault, ERRNO);
