/* yaml_events.c: the floor for YAML decoding: libyaml's event parse of a
** file, nothing built. Prints the best of N runs in seconds. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <yaml.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  FILE *f = fopen(argv[1], "rb");
  int runs = argc > 2 ? atoi(argv[2]) : 5, r;
  long n;
  char *buf;
  double best = 1e9;
  if (!f) return 1;
  fseek(f, 0, SEEK_END); n = ftell(f); fseek(f, 0, SEEK_SET);
  buf = malloc((size_t)n);
  if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) return 1;
  fclose(f);
  for (r = 0; r < runs; r++) {
    yaml_parser_t p;
    yaml_event_t ev;
    long events = 0;
    double t0 = now(), dt;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, (unsigned char *)buf, (size_t)n);
    for (;;) {
      int done;
      if (!yaml_parser_parse(&p, &ev)) return 2;
      done = ev.type == YAML_STREAM_END_EVENT;
      yaml_event_delete(&ev);
      events++;
      if (done) break;
    }
    yaml_parser_delete(&p);
    dt = now() - t0;
    if (dt < best) best = dt;
  }
  printf("%.4f\n", best);
  free(buf);
  return 0;
}
