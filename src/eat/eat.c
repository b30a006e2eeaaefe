/* placeholder until the module lands */
#include "eat.h"
