#ifndef INCEPTION_IMAGE_H
#define INCEPTION_IMAGE_H
/* Placeholder: libjpeg-turbo / libpng glue lands here. */
int ii_version(void);
#endif
