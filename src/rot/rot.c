/* placeholder until the module lands */
#include "rot.h"
