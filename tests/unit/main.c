// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/* The unit test runner: every suite, Check's fork mode (a test per child). */
#include <stdio.h>
#include <stdlib.h>

#include "unit.h"

int main(void)
{
	SRunner *sr = srunner_create(work_suite());
	int failed;

	/* The API suite checks the software devices sim0..sim3 by name;
	 * on a vfio device its device-generic part. */
	if (test_on_sim() || test_on_vfio())
		srunner_add_suite(sr, api_suite());
	srunner_add_suite(sr, faults_suite());
	srunner_add_suite(sr, mirror_suite());
	srunner_add_suite(sr, lifecycle_suite());
	srunner_add_suite(sr, callback_suite());
	srunner_add_suite(sr, fork_suite());
	srunner_add_suite(sr, threads_suite());
	srunner_add_suite(sr, cancel_suite());
	srunner_add_suite(sr, print_hook_suite());
	srunner_add_suite(sr, regress_dev_suite());
	srunner_add_suite(sr, coherence_suite());
	srunner_add_suite(sr, unbind_suite());
	srunner_add_suite(sr, reserved_suite());
	srunner_add_suite(sr, trace_suite());
	srunner_add_suite(sr, migrate_suite());
	srunner_add_suite(sr, exclusive_suite());
	srunner_add_suite(sr, inline_suite());
	/* The software device's own fault service policy. */
	if (test_on_sim())
		srunner_add_suite(sr, fault_around_suite());
	srunner_add_suite(sr, pipeline_suite());
	/* The software device's shortcuts (its ATC, threads, snapshots). */
	if (test_on_sim())
		srunner_add_suite(sr, fastpath_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	/* A suite or case picked by name that isn't in this binary (a
	 * typo, a stale build) runs nothing: that is a failure, not a pass. */
	if ((getenv("CK_RUN_SUITE") || getenv("CK_RUN_CASE")) &&
	    !srunner_ntests_run(sr)) {
		fprintf(stderr, "sva-unit: CK_RUN_SUITE=%s CK_RUN_CASE=%s matched no test\n",
			getenv("CK_RUN_SUITE") ?: "", getenv("CK_RUN_CASE") ?: "");
		failed = 1;
	}
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
