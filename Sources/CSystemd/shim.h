#ifndef LOGTRIAGE_CSYSTEMD_SHIM_H
#define LOGTRIAGE_CSYSTEMD_SHIM_H
#include <systemd/sd-journal.h>
#include <systemd/sd-daemon.h>
#endif
