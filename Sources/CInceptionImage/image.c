#include "inception_image.h"
int ii_version(void) { return 1; }
