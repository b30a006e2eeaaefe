/* sphere: the operator and developer CLI. Everything is in src/cli. */
#include "cli/cli.h"

int main(int argc, char **argv)
{
	return cli_main(argc, argv);
}
