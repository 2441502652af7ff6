/* The pod sandbox process: holds the pod's namespaces, reaps orphaned children, exits on
 * SIGINT/SIGTERM. Built static into a FROM-scratch image (images/pause.sh). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction term = {.sa_handler = stop}, child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  sigaction(SIGINT, &term, NULL);
  sigaction(SIGTERM, &term, NULL);
  sigaction(SIGCHLD, &child, NULL);
  if (getpid() != 1) {
    /* Only meaningful as a container's init; running it elsewhere is a mistake. */
    return 2;
  }
  for (;;) pause();
}
