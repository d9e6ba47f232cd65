// Commands for bench/init.ts (compiled at bench time into bench/.build/init-helper):
//
//   stamp       print "<CLOCK_MONOTONIC ns>\n" and exit: the command's first byte
//   zombies N   vfork N children that _exit(0) at once (vfork returns once each has exited: all
//               N are zombies when the loop ends), print "<CLOCK_MONOTONIC ns>\n", and exit: the N
//               zombies are re-parented together to the init, whose drain starts then
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void stamp(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%lld\n", (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
  if (write(1, buf, n) != n) _exit(2);
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "stamp") == 0) {
    stamp();
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "zombies") == 0) {
    long n = atol(argv[2]);
    for (long i = 0; i < n; i++) {
      pid_t pid = vfork();
      if (pid == 0) _exit(0);
      if (pid < 0) {
        perror("vfork");
        return 1;
      }
    }
    stamp();
    return 0;
  }
  fprintf(stderr, "usage: init-helper stamp | zombies N\n");
  return 2;
}
