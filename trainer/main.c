// stretch: the command line. Placeholder until trainer/cli lands.
#include <stdio.h>
int main(void) { puts("stretch"); return 0; }
