/* spool_submit.c - a spoold client for the benchmark (adapted from the client of the earlier peer measurements,
 * changed to write under SPOOL/tmp/ and to print the ids it submitted):
 * writes N job files, each as SPOOL/tmp/<id>.toml then rename() into
 * SPOOL/incoming/<id>.toml (SPEC.md section 2), with the body
 *   command = ["arg0", "arg1", ...]
 * usage: spool_submit SPOOL N CMD [ARG...]   ids: b<pid>-<seq>, one per line on stdout */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void toml_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) { if (*s == '"' || *s == '\\') fputc('\\', f); fputc(*s, f); }
  fputc('"', f);
}
int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: spool_submit SPOOL N CMD [ARG...]\n"); return 2; }
  long n = atol(argv[2]); char tmp[4096], dst[4096];
  for (long i = 0; i < n; i++) {
    snprintf(tmp, sizeof tmp, "%s/tmp/b%ld-%06ld.toml", argv[1], (long)getpid(), i);
    snprintf(dst, sizeof dst, "%s/incoming/b%ld-%06ld.toml", argv[1], (long)getpid(), i);
    FILE *f = fopen(tmp, "w"); if (!f) { perror(tmp); return 1; }
    fputs("command = [", f);
    for (int a = 3; a < argc; a++) { if (a > 3) fputs(", ", f); toml_str(f, argv[a]); }
    fputs("]\n", f);
    if (fclose(f) != 0 || rename(tmp, dst) != 0) { perror(dst); return 1; }
    printf("b%ld-%06ld\n", (long)getpid(), i);
  }
  return 0;
}
