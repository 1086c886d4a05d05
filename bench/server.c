// SPDX-License-Identifier: Apache-2.0
/*
 * The benchmark backend: accepts TCP connections on one port, writes its name and a newline,
 * closes. Run inside a pod netns; it dies with its parent and after --max-seconds at the latest, so
 * a crashed benchmark never leaves it pinning a namespace.
 *
 *   server --port 8080 --name pod0 [--max-seconds 3600]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	const char *name = NULL;
	long port = 0, max_seconds = 3600;
	char line[64];
	int one = 1, fd, len;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--port") == 0)
			port = strtol(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--name") == 0)
			name = argv[i + 1];
		else if (strcmp(argv[i], "--max-seconds") == 0)
			max_seconds = strtol(argv[i + 1], NULL, 10);
	}
	if (!name || port < 1 || port > 65535 || max_seconds < 1) {
		fprintf(stderr, "usage: server --port PORT --name NAME [--max-seconds S]\n");
		return 2;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		return 1;
	alarm((unsigned int)max_seconds);
	len = snprintf(line, sizeof(line), "%s\n", name);
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 65535) < 0) {
		perror("server");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
			    errno == ENFILE)
				continue;
			perror("accept");
			return 1;
		}
		/* The client may already have reset the connection (connect-only runs): ignore
		 * errors. */
		send(c, line, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
		close(c);
	}
}
