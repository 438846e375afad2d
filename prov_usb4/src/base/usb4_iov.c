/* iovec arithmetic every layer shares: lengths, slices, copies. */
#include <string.h>

#include "usb4.h"

size_t usb4_iov_len(const struct iovec *iov, size_t count)
{
	size_t len = 0;

	for (size_t i = 0; i < count; i++)
		len += iov[i].iov_len;
	return len;
}

bool usb4_iov_valid(const struct iovec *iov, size_t count)
{
	size_t total = 0;

	/* One buffer, the common case (the wrap test inlined). */
	if (count == 1)
		return usb4_buf_valid(iov[0].iov_base, iov[0].iov_len);
	for (size_t i = 0; i < count; i++) {
		size_t len = iov[i].iov_len;

		if (!len)
			continue;
		if (!iov[i].iov_base ||
		    usb4_range_wraps((uintptr_t) iov[i].iov_base, len) ||
		    len > SIZE_MAX - total)
			return false;
		total += len;
	}
	return true;
}

int usb4_iov_slice(const struct iovec *iov, size_t count, uint64_t off,
		   size_t len, struct iovec *out, int max)
{
	int n = 0;

	for (size_t i = 0; i < count && len && n < max; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t take = iov[i].iov_len - off < len ?
			      iov[i].iov_len - off : len;
		out[n].iov_base = (char *) iov[i].iov_base + off;
		out[n++].iov_len = take;
		len -= take;
		off = 0;
	}
	return n;
}

void usb4_iov_copy_in(const struct iovec *iov, size_t count, uint64_t off,
		      const void *src, size_t len)
{
	struct iovec parts[USB4_IOV_LIMIT];
	const char *p = src;
	int n;

	/* A whole message into one buffer, the common case: no slicing. */
	if (count == 1 && off == 0) {
		if (len > iov[0].iov_len)
			len = iov[0].iov_len;
		if (iov[0].iov_base != src)
			memmove(iov[0].iov_base, src, len);
		return;
	}
	n = usb4_iov_slice(iov, count, off, len, parts, USB4_IOV_LIMIT);

	/* src may lie in one of the parts already (a receive placed it), or
	 * in another part of the same buffer. */
	for (int i = 0; i < n; i++) {
		if (parts[i].iov_base != p)
			memmove(parts[i].iov_base, p, parts[i].iov_len);
		p += parts[i].iov_len;
	}
}

void usb4_iov_copy_out(const struct iovec *iov, size_t count, void *dst,
		       size_t len)
{
	char *p = dst;

	for (size_t i = 0; i < count && len; i++) {
		size_t n = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(p, iov[i].iov_base, n);
		p += n;
		len -= n;
	}
}
