#ifndef LOGTRIAGE_CSYSTEMD_SHIM_H
#define LOGTRIAGE_CSYSTEMD_SHIM_H
#include <systemd/sd-journal.h>
#include <systemd/sd-daemon.h>
#include <malloc.h> /* malloc_trim: the daemon returns memory after large snapshots */
#endif
