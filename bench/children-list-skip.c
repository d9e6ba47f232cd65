// How often a thread's /proc children list, read right after fork() the way the fork hook
// reads it, misses the new child while another thread reaps the previous one: the kernel
// starts again from the head by position where the entry it had just given was reaped (and
// at each new piece of a long list), so an entry reaped meanwhile makes it skip the next one.
// Where the first reading missed the child, it reads the list again, at most twice more, as
// the fork hook does (crates/subreaper-core/src/fork_hook.rs). Not part of `npm run bench`.
//
//   gcc -O2 -pthread -o /tmp/children-list-skip bench/children-list-skip.c
//   /tmp/children-list-skip 20000 800     # forks, live children beside them
//
// Every child it makes is killed and reaped before it exits.
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int handoff, stop;

// Reaps each previous child handed to it, concurrently with the forking thread's reading.
static void *reap_previous(void *arg) {
  (void)arg;
  while (!atomic_load(&stop)) {
    int pid = atomic_load(&handoff);
    if (pid > 0) {
      waitpid(pid, NULL, 0);
      atomic_store(&handoff, 0);
    }
  }
  return NULL;
}

// Whether the calling thread's children list, read as the fork hook reads it, holds `want`.
static int listed(pid_t want) {
  static char buf[1 << 20];
  int fd = open("/proc/thread-self/children", O_RDONLY), filled = 0, n;
  if (fd < 0) return -1;
  while (filled < (int)sizeof buf - 2049 && (n = read(fd, buf + filled, 2048)) > 0) filled += n;
  close(fd);
  buf[filled] = 0;
  for (char *s = buf; *s;) {
    char *end;
    long pid = strtol(s, &end, 10);
    if (end == s) break;
    if (pid == want) return 1;
    s = end;
  }
  return 0;
}

static void kill_and_reap(pid_t pid) {
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

int main(int argc, char **argv) {
  int forks = argc > 1 ? atoi(argv[1]) : 20000;
  int live = argc > 2 ? atoi(argv[2]) : 800;
  pid_t *kept = calloc(live > 0 ? live : 1, sizeof *kept);
  for (int i = 0; i < live; i++) {
    kept[i] = fork();
    if (kept[i] == 0) {
      pause();
      _exit(0);
    }
  }
  pthread_t reaper;
  pthread_create(&reaper, NULL, reap_previous, NULL);
  int missed = 0, still_missed = 0;
  for (int i = 0; i < forks; i++) {
    pid_t previous = fork();
    if (previous == 0) _exit(0);
    atomic_store(&handoff, previous);
    pid_t child = fork();
    if (child == 0) {
      pause();
      _exit(0);
    }
    if (listed(child) == 0) {
      missed++;
      int found = 0;
      for (int again = 0; again < 2 && !found; again++) found = listed(child) == 1;
      if (!found) still_missed++;
    }
    kill_and_reap(child);
    while (atomic_load(&handoff) != 0) {
    }
  }
  atomic_store(&stop, 1);
  pthread_join(reaper, NULL);
  for (int i = 0; i < live; i++) kill_and_reap(kept[i]);
  printf("forks %d, live children %d: the new child missing from the first reading %d times, "
         "from two more readings after it %d times\n",
         forks, live, missed, still_missed);
  return 0;
}
