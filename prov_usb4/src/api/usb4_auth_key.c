/*
 * The job key of a domain or endpoint: the auth_key attribute when the
 * application gives one, else FI_USB4_AUTH_KEY, else the contents of
 * FI_USB4_AUTH_KEY_FILE (less one trailing newline, so that a file written
 * with echo holds the same key as the variable).  Every endpoint of a job
 * must be given the same bytes: they are hashed into the key the udp link
 * authenticates datagrams with (src/rel/usb4_rel_auth.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "usb4_api.h"

static int key_copy(struct usb4_core_key *key, const void *bytes, size_t len)
{
	if (len > sizeof(key->bytes)) {
		USB4_WARN(FI_LOG_DOMAIN, "auth key of %zu bytes: at most %zu\n",
			  len, sizeof(key->bytes));
		return -FI_EINVAL;
	}
	memcpy(key->bytes, bytes, len);
	key->len = len;
	return 0;
}

static int key_from_file(struct usb4_core_key *key, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		USB4_WARN(FI_LOG_DOMAIN, "FI_USB4_AUTH_KEY_FILE=%s: %s\n", path,
			  strerror(errno));
		return -FI_EINVAL;
	}
	/* One byte more than fits: a longer file is refused, not cut. */
	n = read(fd, key->bytes, sizeof(key->bytes));
	if (n == (ssize_t) sizeof(key->bytes)) {
		char more;

		if (read(fd, &more, 1) > 0)
			n = -2;
	}
	close(fd);
	if (n > 0 && key->bytes[n - 1] == '\n')
		n--;
	if (n <= 0) {
		USB4_WARN(FI_LOG_DOMAIN, "FI_USB4_AUTH_KEY_FILE=%s: %s\n", path,
			  n == -2 ? "longer than 1024 bytes" :
			  n < 0 ? strerror(errno) : "empty");
		return -FI_EINVAL;
	}
	key->len = (size_t) n;
	return 0;
}

int usb4_auth_key_resolve(const void *attr_key, size_t attr_len,
			  struct usb4_core_key *key)
{
	key->len = 0;
	if (attr_len) {
		if (!attr_key)
			return -FI_EINVAL;
		return key_copy(key, attr_key, attr_len);
	}
	if (usb4_params.auth_key && *usb4_params.auth_key)
		return key_copy(key, usb4_params.auth_key,
				strlen(usb4_params.auth_key));
	if (usb4_params.auth_key_file && *usb4_params.auth_key_file)
		return key_from_file(key, usb4_params.auth_key_file);
	return 0;
}
