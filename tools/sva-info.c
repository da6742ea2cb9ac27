// SPDX-License-Identifier: LGPL-2.1-or-later OR MIT
/*
 * sva-info: the devices of this machine and what stands between each and
 * shared virtual addressing: PCIe PASID/ATS/PRI capabilities, the IOMMU
 * group (members, viability, default domain, reserved regions), NUMA node,
 * DRM devices, and the libsva backends present.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_NUMA
#include <numa.h>
#endif
#ifdef HAVE_DRM
#include <xf86drm.h>
#endif

#include "sva/sva.h"
#include "info.h"

static const char *root = "/sys";
static bool json;
static bool first_item;

/* Read a one-line sysfs attribute into @buf; "" if absent. */
static const char *attr(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static const char *attr(char *buf, size_t len, const char *fmt, ...)
{
	char path[PATH_MAX];
	va_list ap;
	ssize_t n;
	int fd;

	va_start(ap, fmt);
	vsnprintf(path, sizeof(path), fmt, ap);
	va_end(ap);
	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return buf;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/* basename of the link at @fmt, or "" */
static const char *link_base(char *buf, size_t len, const char *fmt,
			     const char *bdf)
{
	char path[PATH_MAX], target[PATH_MAX];
	ssize_t n;
	char *slash;

	snprintf(path, sizeof(path), fmt, root, bdf);
	n = readlink(path, target, sizeof(target) - 1);
	buf[0] = '\0';
	if (n <= 0)
		return buf;
	target[n] = '\0';
	slash = strrchr(target, '/');
	slash = slash ? slash + 1 : target;
	if (strlen(slash) >= len)
		return buf;	/* no sysfs name is that long */
	memcpy(buf, slash, strlen(slash) + 1);
	return buf;
}

static bool safe_driver(const char *drv)
{
	return !*drv || !strcmp(drv, "vfio-pci") || !strcmp(drv, "pci-stub") ||
	       !strcmp(drv, "pcieport");
}

static void json_sep(void)
{
	if (!first_item)
		printf(",");
	first_item = false;
}

struct group_info {
	char id[32], type[32];
	char members[1024];
	char regions[1024];	/* "start-end type; ..." */
	bool viable;
	int nr_msi;
};

static void group_read(const char *id, struct group_info *g)
{
	char path[PATH_MAX], drv[64], line[256];
	struct dirent *de;
	FILE *fp;
	DIR *d;

	memset(g, 0, sizeof(*g));
	snprintf(g->id, sizeof(g->id), "%s", id);
	attr(g->type, sizeof(g->type), "%s/kernel/iommu_groups/%s/type", root,
	     id);
	g->viable = true;
	snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%s/devices", root,
		 id);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		link_base(drv, sizeof(drv), "%s/bus/pci/devices/%s/driver",
			  de->d_name);
		if (!safe_driver(drv))
			g->viable = false;
		snprintf(g->members + strlen(g->members),
			 sizeof(g->members) - strlen(g->members), "%s%s%s%s%s",
			 *g->members ? " " : "", de->d_name,
			 *drv ? "(" : "", drv, *drv ? ")" : "");
	}
	if (d)
		closedir(d);
	snprintf(path, sizeof(path),
		 "%s/kernel/iommu_groups/%s/reserved_regions", root, id);
	fp = fopen(path, "r");
	while (fp && fgets(line, sizeof(line), fp)) {
		unsigned long long s, e;
		char type[32];

		if (sscanf(line, "%llx %llx %31s", &s, &e, type) != 3)
			continue;
		g->nr_msi += !strcmp(type, "msi");
		snprintf(g->regions + strlen(g->regions),
			 sizeof(g->regions) - strlen(g->regions),
			 "%s%#llx-%#llx %s", *g->regions ? "; " : "", s, e,
			 type);
	}
	if (fp)
		fclose(fp);
}

static void pci_device(const char *bdf)
{
	char vendor[16], device[16], class[16], drv[64], node[16], gid[32];
	char path[PATH_MAX], blockers[512] = "";
	struct pci_sva_caps caps;
	struct group_info g;
	uint8_t cfg[4096];
	ssize_t n = 0;
	int fd;

	attr(vendor, sizeof(vendor), "%s/bus/pci/devices/%s/vendor", root, bdf);
	attr(device, sizeof(device), "%s/bus/pci/devices/%s/device", root, bdf);
	attr(class, sizeof(class), "%s/bus/pci/devices/%s/class", root, bdf);
	attr(node, sizeof(node), "%s/bus/pci/devices/%s/numa_node", root, bdf);
	link_base(drv, sizeof(drv), "%s/bus/pci/devices/%s/driver", bdf);
	link_base(gid, sizeof(gid), "%s/bus/pci/devices/%s/iommu_group", bdf);
	snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/config", root, bdf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, cfg, sizeof(cfg));
		close(fd);
	}
	pci_parse_sva_caps(cfg, n > 0 ? (size_t)n : 0, &caps);
	if (*gid)
		group_read(gid, &g);

#define BLOCK(cond, msg) \
	if (cond) \
		snprintf(blockers + strlen(blockers), \
			 sizeof(blockers) - strlen(blockers), "%s%s", \
			 *blockers ? "; " : "", msg)
	BLOCK(!caps.config_full && geteuid(),
	      "extended config space unreadable (run as root)");
	BLOCK(!caps.config_full && !geteuid(),
	      "no extended config space (conventional PCI)");
	BLOCK(caps.config_full && !caps.pasid, "no PASID capability");
	BLOCK(caps.config_full && !caps.ats, "no ATS capability");
	BLOCK(caps.config_full && !caps.pri,
	      "no PRI: device faults can't be served, memory must be pinned");
	BLOCK(!*gid, "no IOMMU group: IOMMU absent or disabled");
	BLOCK(*gid && !strcmp(g.type, "identity"),
	      "default domain identity: DMA bypasses the IOMMU");
	BLOCK(*gid && !g.viable, "group not viable: a member has a driver");

	if (json) {
		json_sep();
		printf("\n    {\"bdf\": \"%s\", \"vendor\": \"%s\", "
		       "\"device\": \"%s\", \"class\": \"%s\", "
		       "\"driver\": \"%s\", \"numa_node\": %s, "
		       "\"pasid\": %s, \"pasid_width\": %u, \"ats\": %s, "
		       "\"pri\": %s, \"pri_max_requests\": %u, ",
		       bdf, vendor, device, class, drv, *node ? node : "-1",
		       caps.pasid ? "true" : "false", caps.pasid_width,
		       caps.ats ? "true" : "false",
		       caps.pri ? "true" : "false", caps.pri_max_requests);
		if (*gid)
			printf("\"iommu_group\": {\"id\": %s, \"type\": \"%s\", "
			       "\"viable\": %s, \"members\": \"%s\", "
			       "\"reserved_regions\": \"%s\", \"msi_regions\": %d}, ",
			       g.id, g.type, g.viable ? "true" : "false",
			       g.members, g.regions, g.nr_msi);
		else
			printf("\"iommu_group\": null, ");
		printf("\"sva_ready\": %s, \"blockers\": \"%s\"}",
		       *blockers ? "false" : "true", blockers);
		return;
	}
	printf("%s %s:%s class %s driver %s numa %s\n", bdf, vendor, device,
	       class, *drv ? drv : "-", *node ? node : "-");
	if (caps.config_full)
		printf("  PASID %s (width %u%s%s)  ATS %s  PRI %s (%u requests)\n",
		       caps.pasid ? "yes" : "no", caps.pasid_width,
		       caps.pasid_exec ? ", exec" : "",
		       caps.pasid_priv ? ", priv" : "",
		       caps.ats ? "yes" : "no", caps.pri ? "yes" : "no",
		       caps.pri_max_requests);
	if (*gid) {
		printf("  IOMMU group %s, default domain %s, %s\n", g.id,
		       *g.type ? g.type : "?", g.viable ? "viable" : "not viable");
		printf("    members: %s\n", g.members);
		if (*g.regions)
			printf("    reserved (keep mirrors off): %s\n",
			       g.regions);
	}
	printf("  SVA: %s%s\n", *blockers ? "blocked: " : "ready",
	       blockers);
}

static int pci_devices(void)
{
	char path[PATH_MAX];
	struct dirent **names;
	int n;

	snprintf(path, sizeof(path), "%s/bus/pci/devices", root);
	n = scandir(path, &names, NULL, alphasort);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.')
			pci_device(names[i]->d_name);
		free(names[i]);
	}
	free(names);
	return 0;
}

static void drm_devices(void)
{
#ifdef HAVE_DRM
	drmDevicePtr devs[64];
	int n = drmGetDevices2(0, devs, 64);

	for (int i = 0; i < n; i++) {
		for (int t = 0; t < DRM_NODE_MAX; t++) {
			if (!(devs[i]->available_nodes & (1 << t)))
				continue;
			if (json) {
				json_sep();
				printf("\n    \"%s\"", devs[i]->nodes[t]);
			} else {
				printf("  %s\n", devs[i]->nodes[t]);
			}
		}
	}
	if (n > 0)
		drmFreeDevices(devs, n);
	if (n <= 0 && !json)
		printf("  none\n");
#else
	if (!json)
		printf("  (built without libdrm)\n");
#endif
}

static void backends(void)
{
	struct sva_dev_desc d[32];
	int n = sva_devices(d, 32);

	for (int i = 0; i < n && i < 32; i++) {
		if (json) {
			json_sep();
			printf("\n    {\"name\": \"%s\", \"backend\": \"%s\"}",
			       d[i].name, d[i].backend);
		} else {
			printf("  %-8s backend %s\n", d[i].name, d[i].backend);
		}
	}
}

static int numa_nodes(void)
{
#ifdef HAVE_NUMA
	if (numa_available() >= 0)
		return numa_max_node() + 1;
#endif
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "sysfs", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool real;
	int c, err;

	while ((c = getopt_long(argc, argv, "js:h", lo, NULL)) != -1) {
		switch (c) {
		case 'j': json = true; break;
		case 's': root = optarg; break;
		case 'h':
			printf("usage: sva-info [--json] [--sysfs ROOT]\n");
			return 0;
		default:
			fprintf(stderr, "usage: sva-info [--json] [--sysfs ROOT]\n");
			return 2;
		}
	}
	real = !strcmp(root, "/sys");
	sva_set_print(NULL);
	if (json) {
		printf("{\"sysfs\": \"%s\", \"numa_nodes\": %d, \"pci\": [",
		       root, real ? numa_nodes() : 0);
	} else {
		printf("libsva %s, sysfs %s, NUMA nodes %d\n\nPCI devices:\n",
		       sva_version(), root, real ? numa_nodes() : 0);
	}
	first_item = true;
	err = pci_devices();
	if (err) {
		fprintf(stderr, "sva-info: %s/bus/pci/devices: %s\n", root,
			strerror(-err));
		return 1;
	}
	if (json)
		printf("\n  ], \"drm\": [");
	else
		printf("\nDRM devices:\n");
	first_item = true;
	if (real)
		drm_devices();
	else if (!json)
		printf("  (not read with --sysfs)\n");
	if (json)
		printf("\n  ], \"libsva\": [");
	else
		printf("\nlibsva devices:\n");
	first_item = true;
	backends();
	if (json)
		printf("\n  ]}\n");
	return 0;
}
