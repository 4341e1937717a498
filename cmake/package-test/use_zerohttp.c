/* Links against an installed zerohttp and makes one call through every layer of the package:
 * header, library, soname. Exits 0 when the library answers. */
#include <stdio.h>
#include <string.h>
#include <zerohttp.h>

int main(void) {
  const char *v = zh_version();
  const char *ok = zh_result_str(ZH_OK);
  if (v == NULL || ok == NULL || strlen(v) == 0) {
    fprintf(stderr, "zerohttp: zh_version/zh_result_str returned nothing\n");
    return 1;
  }
  printf("zerohttp %s: ZH_OK = \"%s\"\n", v, ok);
  return 0;
}
