/* maxrss.c: runs a command and prints "<wall_ns> <maxrss_kib>". The
** launcher is tiny, so the peak RSS reported by wait4 (which includes the
** pre-exec image) is the program's own within about a megabyte. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
  posix_spawn_file_actions_t fa;
  struct timespec a, b;
  struct rusage ru;
  pid_t pid;
  int status;
  if (argc < 2) { fprintf(stderr, "usage: maxrss CMD [ARGS...]\n"); return 2; }
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  clock_gettime(CLOCK_MONOTONIC, &a);
  if (posix_spawnp(&pid, argv[1], &fa, NULL, argv + 1, environ) != 0) { perror("spawn"); return 1; }
  if (wait4(pid, &status, 0, &ru) < 0) { perror("wait4"); return 1; }
  clock_gettime(CLOCK_MONOTONIC, &b);
  posix_spawn_file_actions_destroy(&fa);
  printf("%lld %ld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec), ru.ru_maxrss);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
