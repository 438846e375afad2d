/*
 * fi_getinfo for hints that name an open fabric or domain
 * (fabric_attr->fabric, domain_attr->domain).  Open MPI 5.0.10 and later open
 * one domain for two-sided traffic and pass it in the hints of its one-sided
 * layer, with another mr_mode and other caps: the answer must state what the
 * domain really is, since the caller will use that domain, not a new one.
 * An answer carrying the hints' mr_mode instead had the caller address
 * regions by virtual address with provider keys on a domain of offsets and
 * user keys: every remote access came back FI_EACCES.
 *
 * Rules: the named objects must be usb4's; the domain's mode bits must all
 * be offered by the hints (the caller must do what the domain needs); its
 * threading must be at least as safe as the hints ask; its domain caps must
 * cover the hints'; FI_PROGRESS_AUTO only of a domain opened with it.
 * Endpoint caps are not the domain's business: every
 * endpoint of a usb4 domain may do RMA and atomics.
 */
#include "usb4_api.h"

#define USB4_SHARED_REFUSE(...) do { \
	USB4_INFO(FI_LOG_CORE, "shared domain: " __VA_ARGS__); \
	return -FI_ENODATA; \
} while (0)

/* Our modes that bind the caller (the rest we never need). */
#define USB4_MR_MODE_BINDING	USB4_MR_BASIC_BITS

/* Threading models from the most to the least the provider guarantees, as
 * libfabric ranks them; unknown ranks last. */
static int thread_rank(enum fi_threading t)
{
	switch (t) {
	case FI_THREAD_SAFE: return 1;
	case FI_THREAD_FID: return 2;
	case FI_THREAD_DOMAIN: return 3;
	case FI_THREAD_COMPLETION: return 4;
	case FI_THREAD_ENDPOINT: return 5;
	default: return 6;
	}
}

/* The mode bits the hints let us require. */
static uint64_t mr_mode_offered(uint32_t version, int want)
{
	if (FI_VERSION_LT(version, USB4_MR_OLD_API) && !want)
		return USB4_MR_BASIC_BITS;	/* either 1.0 mode will do */
	return usb4_mr_mode_bits((uint64_t) want);
}

static int shared_mr_mode(const struct usb4_domain *d, uint32_t version,
			  int want, int *answer)
{
	uint64_t needs = d->mr_mode & USB4_MR_MODE_BINDING;
	uint64_t offered = mr_mode_offered(version, want);

	if (needs & ~offered)
		USB4_SHARED_REFUSE("opened with mr_mode 0x%llx; the hints offer "
				   "0x%x\n", (unsigned long long) needs, want);
	if (usb4_mr_mode_is_old(version, want))
		*answer = needs ? USB4_MR_BASIC : USB4_MR_SCALABLE;
	else
		*answer = (int) needs;
	return 0;
}

static uint64_t domain_caps_of(const struct usb4_domain *d)
{
	return d->opened.domain_caps ? d->opened.domain_caps :
				       FI_LOCAL_COMM | FI_REMOTE_COMM;
}

static int shared_check(const struct usb4_domain *d,
			const struct fi_domain_attr *hint)
{
	uint64_t caps = domain_caps_of(d);

	if (hint->threading &&
	    thread_rank(hint->threading) < thread_rank(d->opened.threading))
		USB4_SHARED_REFUSE("opened with threading %d, hints ask %d\n",
				   d->opened.threading, hint->threading);
	if (!d->opened.auto_progress &&
	    (hint->data_progress == FI_PROGRESS_AUTO ||
	     hint->control_progress == FI_PROGRESS_AUTO))
		USB4_SHARED_REFUSE("opened with manual progress, hints ask "
				   "FI_PROGRESS_AUTO\n");
	if (hint->caps & ~caps)
		USB4_SHARED_REFUSE("domain caps 0x%llx not opened with\n",
				   (unsigned long long) (hint->caps & ~caps));
	return 0;
}

/* The domain's real attributes replace the template's and the hints'. */
static void shared_answer(struct fi_domain_attr *out,
			  const struct usb4_domain *d)
{
	out->domain = (struct fid_domain *) &d->domain_fid;
	out->threading = d->opened.threading;
	out->control_progress = out->data_progress =
		d->opened.auto_progress ? FI_PROGRESS_AUTO : FI_PROGRESS_MANUAL;
	out->caps = domain_caps_of(d);
	if (d->opened.resource_mgmt)
		out->resource_mgmt = d->opened.resource_mgmt;
	if (d->opened.av_type)
		out->av_type = d->opened.av_type;
}

static int shared_fabric(struct fi_info *out, struct fid_fabric *fid,
			 struct usb4_fabric **fabric)
{
	*fabric = NULL;
	if (!fid)
		return 0;
	*fabric = usb4_fabric_of(fid);
	if (!*fabric)
		USB4_SHARED_REFUSE("the hints' fabric is not a usb4 fabric\n");
	out->fabric_attr->fabric = fid;
	return 0;
}

int usb4_narrow_shared(struct fi_info *out, const struct fi_info *hints,
		       uint32_t version)
{
	struct fid_domain *dfid = hints->domain_attr ?
				  hints->domain_attr->domain : NULL;
	struct usb4_fabric *fabric;
	struct usb4_domain *d;
	int ret;

	ret = shared_fabric(out, hints->fabric_attr ?
			    hints->fabric_attr->fabric : NULL, &fabric);
	if (ret || !dfid)
		return ret;
	d = usb4_domain_of(dfid);
	if (!d)
		USB4_SHARED_REFUSE("the hints' domain is not a usb4 domain\n");
	if (fabric && d->fabric != fabric)
		USB4_SHARED_REFUSE("not opened from the hints' fabric\n");
	ret = shared_check(d, hints->domain_attr);
	if (!ret)
		ret = shared_mr_mode(d, version, hints->domain_attr->mr_mode,
				     &out->domain_attr->mr_mode);
	if (ret)
		return ret;
	shared_answer(out->domain_attr, d);
	out->fabric_attr->fabric = &d->fabric->fabric_fid;
	return 0;
}
