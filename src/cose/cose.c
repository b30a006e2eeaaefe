/* placeholder until the module lands */
#include "cose.h"
