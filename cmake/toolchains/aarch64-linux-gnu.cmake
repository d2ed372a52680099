# Cross-compiling for arm64 on a Debian x86-64 host: Debian's gcc-aarch64-linux-gnu, the
# arm64 multiarch -dev packages (libopenblas-serial-dev:arm64, libcmocka-dev:arm64) and
# qemu-user to run the tests (tools/portability.sh installs them all).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Multiarch: arm64 libraries live in /usr/lib/aarch64-linux-gnu next to the host's, so the
# host prefix is searched for libraries and headers, and never for programs.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# ctest runs the test programs through qemu; the arm64 loader and libraries are the
# multiarch ones, so qemu needs no sysroot.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
# pkg-config reads the arm64 .pc files (CMocka's, for the tests).
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
