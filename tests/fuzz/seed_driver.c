/* seed_driver.c: runs a fuzz harness's seed corpus without libFuzzer, so
** that `make test` (gcc, no clang) checks every seed under the same entry
** point the fuzzer calls: linked with one harness (fuzz_decode.c or
** fuzz_engine.c, built with its FUZZ_* definition), it feeds
** LLVMFuzzerTestOneInput each regular file of each directory given. A seed
** that crashes or fails the harness's check traps (the test fails with the
** signal); a directory missing or holding no seed fails it too, as
** `make fuzz` would on a clean checkout. Prints one line per directory. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The file's bytes (malloc'd, *len set), or NULL. */
static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  size_t cap = 4096, n;
  uint8_t *buf = malloc(cap);
  *len = 0;
  if (f == NULL || buf == NULL) {
    if (f) fclose(f);
    free(buf);
    return NULL;
  }
  while ((n = fread(buf + *len, 1, cap - *len, f)) > 0) {
    uint8_t *nb;
    *len += n;
    if (*len < cap) continue;
    if ((nb = realloc(buf, cap *= 2)) == NULL) {
      fclose(f);
      free(buf);
      return NULL;
    }
    buf = nb;
  }
  fclose(f);
  return buf;
}

/* Feeds every regular file of dir, in name order; returns how many, or -1. */
static int run_dir(const char *dir) {
  struct dirent **names;
  int n = scandir(dir, &names, NULL, alphasort), i, fed = 0;
  if (n < 0) {
    perror(dir);
    return -1;
  }
  for (i = 0; i < n; i++) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
      size_t len;
      uint8_t *data = slurp(path, &len);
      if (data == NULL) {
        perror(path);
        return -1;
      }
      LLVMFuzzerTestOneInput(data, len);
      free(data);
      fed++;
    }
    free(names[i]);
  }
  free(names);
  return fed;
}

int main(int argc, char **argv) {
  int i, status = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s CORPUS_DIR...\n", argv[0]);
    return 2;
  }
  for (i = 1; i < argc; i++) {
    int fed = run_dir(argv[i]);
    if (fed <= 0) {
      fprintf(stderr, "FAIL %s: %s\n", argv[i], fed == 0 ? "no seed in it" : "cannot read it");
      status = 1;
    }
    else printf("ok   %s: %d seeds\n", argv[i], fed);
  }
  return status;
}
