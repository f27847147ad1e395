/* io.h - what the command line needs from the file-format layer as a whole, so cmd/ includes no
 * format library's header: the process-wide set-up of libhdf5 and its version. */
#ifndef AB_IO_IO_H
#define AB_IO_IO_H

/* First thing in main, before any other HDF5 call. Turns off libhdf5's clean-up at exit:
 * libhdf5 1.10 cannot close a file whose writes failed (a full disk); its close fails halfway
 * and its exit handler then crashes on the half-closed file (SIGSEGV in H5F__close_cb) after
 * the one-line error. Every file is closed or committed explicitly before a command returns,
 * so the handler has nothing else to do. Also turns off HDF5's own error printing. */
void ab_io_start(void);

/* "major.minor.release" of the HDF5 library in use (static storage). */
const char *ab_io_hdf5_version(void);

#endif
