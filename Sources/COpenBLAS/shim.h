#include <cblas.h>
// Declared by OpenBLAS's cblas.h on most builds; repeated so the module does not
// depend on which variant of the header is installed.
void openblas_set_num_threads(int num_threads);
