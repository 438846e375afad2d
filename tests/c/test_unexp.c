/*
 * The unexpected queue is bounded (FI_USB4_UNEXP_PEER_BYTES,
 * FI_USB4_UNEXP_BYTES): a sender of messages nobody receives is slowed down
 * (its sends return -FI_EAGAIN once its link holds back what the receiver
 * refused), the receiver does not grow, and once the receiver posts
 * receives every message arrives, in order and bit-exact.
 *
 * Two endpoints of this process over the shm link; small bounds and a
 * small inbox through the environment, set before libfabric loads the
 * provider.  What the receiver queued at most is read from the endpoint's
 * statistics line, which the provider logs at close (FI_LOG_LEVEL=warn,
 * stderr sent to a file for the duration).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "usb4_test.h"
#include "usb4_fixture.h"

#define MSG_LEN		(16 * 1024)
#define MSGS		200
#define PEER_BOUND	(256 * 1024)	/* FI_USB4_UNEXP_PEER_BYTES */
#define TOTAL_BOUND	(1024 * 1024)	/* FI_USB4_UNEXP_BYTES */
#define STALL_MS	300		/* no send accepted this long: held */

static unsigned char msg[MSGS][MSG_LEN];
static unsigned char got[MSG_LEN];

static void fill_msg(unsigned char *p, unsigned seq)
{
	memcpy(p, &seq, sizeof(seq));
	fx_fill(p + sizeof(seq), MSG_LEN - sizeof(seq), seq, 0);
}

/* Progress both endpoints; sender completions must all be successes. */
static void drain_sender(struct fx *tx, int *done, int *errors)
{
	struct fi_cq_data_entry e;
	struct fi_cq_err_entry err;
	ssize_t r;

	while ((r = fi_cq_read(tx->cq, &e, 1)) == 1 || r == -FI_EAVAIL) {
		if (r == 1) {
			(*done)++;
			continue;
		}
		fi_cq_readerr(tx->cq, &err, 0);
		(*errors)++;
	}
}

/* Sends until the sender is held back for STALL_MS; how many went. */
static int flood(struct fx *tx, struct fx *rx, fi_addr_t dest, int *done,
		 int *errors)
{
	uint64_t last_ok = fx_now_ms();
	struct fi_cq_data_entry e;
	bool early = false;	/* a completion with no receive posted */
	int sent = 0;

	while (sent < MSGS && fx_now_ms() - last_ok < STALL_MS) {
		ssize_t r = fi_send(tx->ep, msg[sent], MSG_LEN, NULL, dest, NULL);

		if (r == 0) {
			sent++;
			last_ok = fx_now_ms();
		} else if (r != -FI_EAGAIN) {
			CHECK_EQ_MSG(r, 0, "fi_send of message %d", sent);
			break;
		}
		drain_sender(tx, done, errors);
		early |= fi_cq_read(rx->cq, &e, 1) != -FI_EAGAIN; /* progress */
	}
	CHECK_MSG(!early, "the receiver completed something it never posted");
	return sent;
}

/* Receives every message in order, sending the rest as room comes. */
static void receive_all(struct fx *tx, struct fx *rx, fi_addr_t dest,
			int sent, int *done, int *errors)
{
	struct fi_cq_data_entry e;
	struct fi_cq_err_entry err;
	int bad = 0;

	for (unsigned seq = 0; seq < MSGS; seq++) {
		unsigned have;
		int ret;

		CHECK_EQ(fi_recv(rx->ep, got, sizeof(got), NULL, FI_ADDR_UNSPEC,
				 NULL), 0);
		do {
			if (sent < MSGS && fi_send(tx->ep, msg[sent], MSG_LEN,
						   NULL, dest, NULL) == 0)
				sent++;
			drain_sender(tx, done, errors);
			ret = fi_cq_read(rx->cq, &e, 1) == 1;
		} while (!ret && fx_now_ms() < UINT64_MAX);
		memcpy(&have, got, sizeof(have));
		if (have != seq || memcmp(got, msg[seq], MSG_LEN)) {
			if (!bad++)
				fprintf(stdout, "message %u: got seq %u%s\n", seq,
					have, have == seq ? " with other bytes" : "");
		}
		(void) err;
	}
	CHECK_EQ_MSG(bad, 0, "messages out of order or corrupted");
}

/* The largest number logged after key (e.g. "unexp-peak-bytes "), or -1. */
static long long logged(const char *log, const char *key)
{
	long long best = -1;

	for (const char *p = strstr(log, key); p; p = strstr(p + 1, key)) {
		long long v = strtoll(p + strlen(key), NULL, 10);

		if (v > best)
			best = v;
	}
	return best;
}

static char *read_file(const char *path)
{
	static char buf[1 << 16];
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

int main(void)
{
	char log_path[] = "/tmp/test_unexp.XXXXXX";
	int log_fd = mkstemp(log_path), saved_err = dup(2);
	struct fx tx, rx;
	fi_addr_t to_rx;
	int sent, done = 0, errors = 0;
	char *log;

	for (unsigned i = 0; i < MSGS; i++)
		fill_msg(msg[i], i);
	setenv("FI_USB4_EAGER_SIZE", "16384", 1);	/* 16 KiB go eager */
	setenv("FI_USB4_RING_SLOTS", "16", 1);		/* the link holds few */
	setenv("FI_USB4_UNEXP_PEER_BYTES", "262144", 1);
	setenv("FI_USB4_UNEXP_BYTES", "1048576", 1);
	setenv("FI_LOG_LEVEL", "warn", 1);
	dup2(log_fd, 2);

	CHECK_EQ(fx_open(&tx, FI_MSG, FX_MR_USER), 0);
	CHECK_EQ(fx_open(&rx, FI_MSG, FX_MR_USER), 0);
	to_rx = fx_insert(&tx, rx.addr);
	CHECK(fx_insert(&rx, tx.addr) != FI_ADDR_NOTAVAIL);
	CHECK(to_rx != FI_ADDR_NOTAVAIL);

	sent = flood(&tx, &rx, to_rx, &done, &errors);
	printf("sent %d of %d before the sender was held back\n", sent, MSGS);
	CHECK_MSG(sent < MSGS, "the sender was never slowed down");
	CHECK_EQ_MSG(errors, 0, "held-back sends must not fail");

	receive_all(&tx, &rx, to_rx, sent, &done, &errors);
	CHECK_EQ(errors, 0);

	fx_close(&tx);
	fx_close(&rx);
	fflush(stderr);
	dup2(saved_err, 2);
	log = read_file(log_path);
	unlink(log_path);
	printf("receiver queued at most %lld bytes (bound %d), held back %lld "
	       "times\n", logged(log, "unexp-peak-bytes "), PEER_BOUND,
	       logged(log, "unexp-full "));
	CHECK_MSG(logged(log, "unexp-peak-bytes ") > 0, "no statistics line:\n%s",
		  log);
	CHECK(logged(log, "unexp-peak-bytes ") <= PEER_BOUND);
	CHECK(logged(log, "unexp-full ") > 0);
	return usb4_test_done("test_unexp");
}
