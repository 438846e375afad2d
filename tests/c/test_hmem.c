/*
 * Device memory (FI_HMEM) is refused cleanly: usb4 moves host memory only.
 *
 *  - fi_getinfo with FI_HMEM in the caps (primary, or in the tx/rx/domain
 *    attributes), with or without FI_MR_HMEM in mr_mode, is -FI_ENODATA
 *    with the reason logged; FI_MR_HMEM offered alone (a mode the
 *    application can live with, no FI_HMEM asked) is answered without it.
 *  - fi_mr_regattr with an iface other than FI_HMEM_SYSTEM is -FI_ENOSYS
 *    with the reason logged, whether the address is host memory or a
 *    device address this process cannot read (what a GPU build of a
 *    plugin passes: never touched), and for an iface newer than the
 *    build.  Nothing is left registered: the domain closes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <rdma/fabric.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_errno.h>

#include "usb4_test.h"

#define LOG_MAX		65536

static FILE *log_file;
static int saved_stderr = -1;
static char log_text[LOG_MAX];

static void capture_begin(void)
{
	fflush(stderr);
	if (!log_file)
		log_file = tmpfile();
	if (!log_file)
		return;
	if (saved_stderr < 0)
		saved_stderr = dup(2);
	if (ftruncate(fileno(log_file), 0) == 0)
		rewind(log_file);
	dup2(fileno(log_file), 2);
}

static const char *capture_end(void)
{
	size_t n;

	fflush(stderr);
	log_text[0] = '\0';
	if (!log_file)
		return log_text;
	dup2(saved_stderr, 2);
	rewind(log_file);
	n = fread(log_text, 1, sizeof(log_text) - 1, log_file);
	log_text[n] = '\0';
	return log_text;
}

static struct fi_info *hints_new(void)
{
	struct fi_info *h = fi_allocinfo();

	if (!h)
		exit(2);
	h->fabric_attr->prov_name = strdup("usb4");
	h->ep_attr->type = FI_EP_RDM;
	h->caps = FI_TAGGED | FI_MSG;
	h->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED |
				  FI_MR_PROV_KEY;
	return h;
}

static void expect_refused(const char *who, struct fi_info *h)
{
	struct fi_info *info = NULL;
	const char *log;
	int ret;

	capture_begin();
	ret = fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, h, &info);
	log = capture_end();
	CHECK_EQ_MSG(ret, -FI_ENODATA, "%s", who);
	CHECK_MSG(strstr(log, "FI_HMEM asked: usb4 moves host memory only"),
		  "%s: no reason logged:\n%s", who, log);
	fi_freeinfo(info);
	fi_freeinfo(h);
}

static void test_getinfo_refuses_hmem(void)
{
	struct fi_info *h, *info = NULL;

	h = hints_new();
	h->caps |= FI_HMEM;
	expect_refused("caps FI_HMEM", h);

	h = hints_new();
	h->caps |= FI_HMEM;
	h->domain_attr->mr_mode |= FI_MR_HMEM;
	expect_refused("caps FI_HMEM, mr_mode FI_MR_HMEM", h);

	h = hints_new();
	h->tx_attr->caps = FI_TAGGED | FI_HMEM;
	expect_refused("tx caps FI_HMEM", h);

	h = hints_new();
	h->rx_attr->caps = FI_TAGGED | FI_HMEM;
	expect_refused("rx caps FI_HMEM", h);

	h = hints_new();
	h->domain_attr->caps = FI_HMEM;
	expect_refused("domain caps FI_HMEM", h);

	/* FI_MR_HMEM without FI_HMEM: a mode offered, not a need. */
	h = hints_new();
	h->domain_attr->mr_mode |= FI_MR_HMEM;
	CHECK_EQ(fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, h, &info), 0);
	if (info) {
		CHECK(!(info->caps & FI_HMEM));
		CHECK(!(info->domain_attr->mr_mode & FI_MR_HMEM));
		fi_freeinfo(info);
	}
	fi_freeinfo(h);
}

/* fi_mr_regattr of [buf, +len) from iface: refused with ret and the reason
 * in the log, nothing registered. */
static void regattr_refused(struct fid_domain *domain, void *buf, size_t len,
			    enum fi_hmem_iface iface, int want,
			    const char *reason, const char *what)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct fi_mr_attr attr = { .mr_iov = &iov, .iov_count = 1,
				   .access = FI_SEND | FI_RECV |
					     FI_REMOTE_READ | FI_REMOTE_WRITE,
				   .iface = iface };
	struct fid_mr *mr = NULL;
	const char *log;
	int ret;

	attr.device.cuda = 0;
	capture_begin();
	ret = fi_mr_regattr(domain, &attr, 0, &mr);
	log = capture_end();
	CHECK_EQ_MSG(ret, want, "iface %d, %s", iface, what);
	CHECK_MSG(strstr(log, reason), "iface %d, %s: '%s' not logged:\n%s",
		  iface, what, reason, log);
	if (!ret && mr)
		fi_close(&mr->fid);
}

static void test_regattr_refuses_devices(void)
{
	static const enum fi_hmem_iface devices[] = {
		FI_HMEM_CUDA, FI_HMEM_ROCR, FI_HMEM_ZE, FI_HMEM_NEURON,
		FI_HMEM_SYNAPSEAI,
	};
	struct fi_info *h = hints_new(), *info = NULL;
	struct fid_fabric *fabric;
	struct fid_domain *domain;
	static char host[4096];
	char *gone;

	CHECK_EQ(fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, h, &info), 0);
	fi_freeinfo(h);
	if (!info)
		return;
	CHECK_EQ(fi_fabric(info->fabric_attr, &fabric, NULL), 0);
	CHECK_EQ(fi_domain(fabric, info, &domain, NULL), 0);
	/* An address of no mapping here, as a device address is. */
	gone = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(gone != MAP_FAILED);
	CHECK_EQ(munmap(gone, 8192), 0);

	for (size_t i = 0; i < sizeof(devices) / sizeof(devices[0]); i++) {
		regattr_refused(domain, host, sizeof(host), devices[i],
				-FI_ENOSYS, "usb4 registers host memory only",
				"host buffer");
		regattr_refused(domain, gone, 8192, devices[i], -FI_ENOSYS,
				"usb4 registers host memory only",
				"device address");
	}
	regattr_refused(domain, gone, 8192, (enum fi_hmem_iface) 1000,
			-FI_ENOSYS, "iface 1000 is not host memory",
			"an iface newer than this build");
	/* Host memory still registers, and nothing was left behind. */
	regattr_refused(domain, gone, 8192, FI_HMEM_SYSTEM, -FI_EINVAL,
			"is not memory of this process", "system, unmapped");
	CHECK_EQ(fi_close(&domain->fid), 0);
	CHECK_EQ(fi_close(&fabric->fid), 0);
	fi_freeinfo(info);
}

int main(void)
{
	struct fi_info *first = NULL;

	setenv("FI_LOG_LEVEL", "info", 1);
	/* libfabric's start-up log out of the way of the captures. */
	fi_getinfo(FI_VERSION(1, 17), NULL, NULL, 0, NULL, &first);
	fi_freeinfo(first);
	test_getinfo_refuses_hmem();
	test_regattr_refuses_devices();
	return usb4_test_done("test_hmem");
}
