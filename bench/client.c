// SPDX-License-Identifier: Apache-2.0
/*
 * The benchmark client: connect() + close() to one TCP target in a loop, bounded by a count and a
 * time limit, then ONE JSON line on stdout. Run inside the lab's client cgroup and node netns, so
 * socklb's cgroup hooks and the node's netfilter rules both see its connects.
 *
 *   client --target 10.96.0.10:80 --count 3000 --duration-ms 20000 [--warmup 200] [--read]
 *
 * Each socket is closed with SO_LINGER {1, 0}: an RST instead of a FIN, so neither side keeps a
 * TIME_WAIT socket and tens of thousands of connects never run out of ports. --read waits for the
 * backend's one-line reply (its name) and counts replies per backend: the balance measurement.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_COUNT   2000000
#define MAX_REPLIES 64
#define MAX_ERRORS  32

struct tally {
	char name[40];
	long count;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void bump(struct tally *t, int *n, int max, const char *name)
{
	for (int i = 0; i < *n; i++) {
		if (strcmp(t[i].name, name) == 0) {
			t[i].count++;
			return;
		}
	}
	if (*n >= max)
		return;
	snprintf(t[*n].name, sizeof(t[*n].name), "%s", name);
	t[*n].count = 1;
	(*n)++;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: client --target A.B.C.D:PORT --count N --duration-ms MS "
			"[--warmup N] [--read] [--timeout-ms MS]\n");
	exit(2);
}

static long num(const char *flag, const char *v, long min, long max)
{
	char *end;
	long n;

	if (!v)
		usage();
	n = strtol(v, &end, 10);
	if (*end || n < min || n > max) {
		fprintf(stderr, "%s must be an integer in %ld..%ld\n", flag, min, max);
		exit(2);
	}
	return n;
}

/* One connection; returns 0 and the connect() time, or an errno. */
static int one(const struct sockaddr_in *sa, int timeout_ms, int read_reply, uint32_t *ns,
	       char *reply, size_t reply_len)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint64_t t0, t1;
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	/* A blocking connect() gives up after SO_SNDTIMEO: a dropped SYN costs a bounded wait. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	t0 = now_ns();
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		err = errno;
		goto out;
	}
	t1 = now_ns();
	*ns = (uint32_t)((t1 - t0) > UINT32_MAX ? UINT32_MAX : (t1 - t0));
	if (read_reply) {
		size_t got = 0;
		ssize_t r;

		while (got < reply_len - 1) {
			r = read(fd, reply + got, reply_len - 1 - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				err = errno;
				goto out;
			}
			if (r == 0)
				break;
			got += (size_t)r;
			if (memchr(reply, '\n', got))
				break;
		}
		reply[got] = 0;
		reply[strcspn(reply, "\r\n")] = 0;
		if (got == 0)
			err = ENODATA;
	}
out:
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
	return err;
}

int main(int argc, char **argv)
{
	const char *target = NULL;
	long count = 0, duration_ms = 0, warmup = 0, timeout_ms = 2000;
	int read_reply = 0;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct tally replies[MAX_REPLIES], errors[MAX_ERRORS];
	int n_replies = 0, n_errors = 0;
	const char *stopped = NULL;
	uint32_t *samples;
	long ok = 0, failed = 0;
	uint64_t start, deadline, elapsed;
	double sum = 0;
	char reply[64];

	for (int i = 1; i < argc; i++) {
		const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(f, "--target") == 0 && v)
			target = argv[++i];
		else if (strcmp(f, "--count") == 0)
			count = num(f, v, 1, MAX_COUNT), i++;
		else if (strcmp(f, "--duration-ms") == 0)
			duration_ms = num(f, v, 1, 600000), i++;
		else if (strcmp(f, "--warmup") == 0)
			warmup = num(f, v, 0, 100000), i++;
		else if (strcmp(f, "--timeout-ms") == 0)
			timeout_ms = num(f, v, 1, 60000), i++;
		else if (strcmp(f, "--read") == 0)
			read_reply = 1;
		else
			usage();
	}
	if (!target || !count || !duration_ms)
		usage();
	{
		char host[64];
		const char *colon = strrchr(target, ':');

		if (!colon || (size_t)(colon - target) >= sizeof(host))
			usage();
		memcpy(host, target, (size_t)(colon - target));
		host[colon - target] = 0;
		if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
			usage();
		sa.sin_port = htons((uint16_t)num("--target port", colon + 1, 1, 65535));
	}
	samples = calloc((size_t)count, sizeof(*samples));
	if (!samples)
		return 1;

	start = now_ns();
	deadline = start + (uint64_t)duration_ms * 1000000ull;
	for (long i = 0; i < warmup && now_ns() < deadline; i++) {
		uint32_t ns;

		one(&sa, (int)timeout_ms, read_reply, &ns, reply, sizeof(reply));
	}
	start = now_ns();
	for (long i = 0; i < count; i++) {
		uint32_t ns = 0;
		int err;

		if (now_ns() >= deadline) {
			stopped = "duration";
			break;
		}
		err = one(&sa, (int)timeout_ms, read_reply, &ns, reply, sizeof(reply));
		if (err) {
			failed++;
			bump(errors, &n_errors, MAX_ERRORS,
			     strerrorname_np(err) ? strerrorname_np(err) : "EUNKNOWN");
			continue;
		}
		samples[ok++] = ns;
		sum += ns;
		if (read_reply)
			bump(replies, &n_replies, MAX_REPLIES, reply);
	}
	elapsed = now_ns() - start;
	qsort(samples, (size_t)ok, sizeof(*samples), cmp_u32);
#define PCT(p) (ok ? samples[(long)((double)(ok - 1) * (p))] : 0)
	printf("{\"target\":\"%s\",\"count\":%ld,\"ok\":%ld,\"failed\":%ld,\"elapsed_ns\":%llu,"
	       "\"mean_ns\":%.0f,\"min_ns\":%u,\"p50_ns\":%u,\"p90_ns\":%u,\"p99_ns\":%u,"
	       "\"max_ns\":%u,"
	       "\"connects_per_s\":%.1f,\"stopped\":%s%s%s,\"errors\":{",
	       target, count, ok, failed, (unsigned long long)elapsed, ok ? sum / (double)ok : 0.0,
	       PCT(0.0), PCT(0.5), PCT(0.9), PCT(0.99), PCT(1.0),
	       elapsed ? (double)(ok + failed) * 1e9 / (double)elapsed : 0.0, stopped ? "\"" : "",
	       stopped ? stopped : "null", stopped ? "\"" : "");
	for (int i = 0; i < n_errors; i++)
		printf("%s\"%s\":%ld", i ? "," : "", errors[i].name, errors[i].count);
	printf("},\"replies\":{");
	for (int i = 0; i < n_replies; i++)
		printf("%s\"%s\":%ld", i ? "," : "", replies[i].name, replies[i].count);
	printf("}}\n");
	free(samples);
	return 0;
}
