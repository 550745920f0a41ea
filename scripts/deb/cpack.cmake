# The Debian package, built by `cpack -G DEB` in the build directory (or
# scripts/package): package cxfs, installed under /usr, with the binaries,
# the mount helper, the systemd units, the man pages, the documentation and
# /etc/cxfs/cluster.conf.example and /etc/logrotate.d/cxfs (conffiles).  dpkg-shlibdeps (dpkg-dev)
# finds the shared libraries' packages; fuse3 is needed to mount, tgt (or
# LIO's targetcli-fb) only where a target is served.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME cxfs)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "cxfs maintainers <cxfs-maintainers@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "shared-disk cluster filesystem in user space")
set(CPACK_PACKAGE_DESCRIPTION
  "cxfs lets several Linux nodes mount one filesystem on shared iSCSI LUNs\n\
through FUSE: every node reads and writes file data on the LUNs itself, one\n\
node serves the metadata and grants tokens that keep the nodes' caches\n\
coherent, a node that dies is fenced and recovered, and the metadata server\n\
can move while applications run. DMAPI serves hierarchical storage managers.\n\
This package holds cxfsd, cxfsctl, mkfs.cxfs, cxfs-check, cxfs-volume, the HSM\n\
daemon and commands, the mount.cxfs helper for /etc/fstab, systemd units and\n\
man pages.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "systemd")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "tgt | targetcli-fb")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_LIST_DIR}/conffiles ${CMAKE_CURRENT_LIST_DIR}/postinst
  ${CMAKE_CURRENT_LIST_DIR}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES TRUE)
include(CPack)
