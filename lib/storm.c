// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * Fault storms: a device whose page requests keep failing (a runaway
 * kernel, a buggy driver, an attack) is quarantined once
 * opts.storm_threshold groups failed within one second, as an IOMMU driver
 * disables PRI on a misbehaving function. A quarantined device runs no
 * descriptor until sva_dev_reset(); other devices, each with its own fault
 * service, are not held up by it.
 */

#include "internal.h"

#define STORM_WINDOW_NS 1000000000ull

void sva__fault_failed(struct sva_bind *bind)
{
	struct sva_dev *dev = bind->dev;
	uint64_t now = sva__now_ns();
	bool quarantine = false;

	sva__mutex_lock(&dev->storm_lock);
	if (now - dev->storm_start > STORM_WINDOW_NS) {
		dev->storm_start = now;
		dev->storm_failed = 0;
	}
	if (++dev->storm_failed >= dev->opts.storm_threshold &&
	    !atomic_load(&dev->quarantined)) {
		atomic_store(&dev->quarantined, true);
		quarantine = true;
	}
	sva__mutex_unlock(&dev->storm_lock);
	if (quarantine) {
		sva__count(bind, SVA_C_QUARANTINES, 1);
		if (sva__tracing(dev))
			sva__trace_quarantine(bind, dev->opts.storm_threshold);
		pr_warn("%s: %u page request groups failed within a second: device quarantined until sva_dev_reset()\n",
			dev->name, dev->opts.storm_threshold);
	}
}

int sva_dev_quarantined(const struct sva_dev *dev)
{
	int err = sva__dev_usable(dev);

	if (err)
		return err;
	return atomic_load(&dev->quarantined);
}

int sva_dev_reset(struct sva_dev *dev)
{
	SVA_NO_CANCEL;
	int err = sva__dev_usable(dev);

	if (err)
		return err;
	sva__mutex_lock(&dev->storm_lock);
	dev->storm_failed = 0;
	dev->storm_start = 0;
	atomic_store(&dev->quarantined, false);
	sva__mutex_unlock(&dev->storm_lock);
	if (dev->ops->reset)
		dev->ops->reset(dev);
	return 0;
}
