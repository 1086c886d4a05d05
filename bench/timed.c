// SPDX-License-Identifier: Apache-2.0
/*
 * Runs a command and prints how long it took, so the harness times iptables-restore or nft alone,
 * without the shell and `ip netns exec` around it: {"exit":0,"elapsed_ns":...,"maxrss_kb":...}
 *
 *   timed --timeout-ms 120000 -- iptables-restore --noflush rules.txt
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pid_t child;

static void on_alarm(int sig)
{
	(void)sig;
	if (child > 0)
		kill(child, SIGKILL);
}

int main(int argc, char **argv)
{
	struct timespec t0, t1;
	struct rusage ru;
	long timeout_ms = 0;
	int i = 1, status = 0;

	if (argc > 2 && strcmp(argv[1], "--timeout-ms") == 0) {
		timeout_ms = strtol(argv[2], NULL, 10);
		i = 3;
	}
	if (i >= argc || strcmp(argv[i], "--") != 0 || i + 1 >= argc || timeout_ms < 1) {
		fprintf(stderr, "usage: timed --timeout-ms MS -- CMD [ARGS...]\n");
		return 2;
	}
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	child = fork();
	if (child < 0)
		return 1;
	if (child == 0) {
		execvp(argv[i + 1], argv + i + 1);
		perror(argv[i + 1]);
		_exit(127);
	}
	signal(SIGALRM, on_alarm);
	alarm((unsigned int)((timeout_ms + 999) / 1000));
	while (wait4(child, &status, 0, &ru) < 0)
		;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("{\"exit\":%d,\"signal\":%d,\"elapsed_ns\":%lld,\"maxrss_kb\":%ld}\n",
	       WIFEXITED(status) ? WEXITSTATUS(status) : -1,
	       WIFSIGNALED(status) ? WTERMSIG(status) : 0,
	       (long long)(t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec),
	       ru.ru_maxrss);
	/* Always 0: the JSON line carries the outcome, and the caller reads it either way. */
	return 0;
}
