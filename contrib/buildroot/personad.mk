################################################################################
#
# personad
#
################################################################################

PERSONAD_VERSION = 0.1.0
PERSONAD_SOURCE = personad-$(PERSONAD_VERSION).tar.gz
# No public download location yet: the tarball is the one `make dist` makes
# in a personad tree, copied into Buildroot's download directory
# ($(BR2_DL_DIR)/personad/), where Buildroot looks before it downloads.
PERSONAD_SITE = file://$(BR2_DL_DIR)/personad
PERSONAD_DEPENDENCIES = host-pkgconf libmicrohttpd wslay cjson nettle
# Buildroot's toolchain wrapper applies the hardening the configuration asks
# for (BR2_SSP_*, BR2_RELRO_*, BR2_PIC_PIE); personad adds none of its own.
PERSONAD_CONF_OPTS = --disable-hardening
# The Kubernetes source (libcurl, personad-kube-client) is not packaged here:
# off explicitly, so the result does not depend on what the sysroot holds.
PERSONAD_CONF_OPTS += --disable-kubernetes

# Every switch whose default depends on what the sysroot holds is given
# explicitly, so the result is what the configuration says.
ifeq ($(BR2_PACKAGE_PERSONAD_DASHBOARD),y)
PERSONAD_DEPENDENCIES += zlib
PERSONAD_CONF_OPTS += --enable-dashboard --enable-compressed-assets
else
PERSONAD_CONF_OPTS += --disable-dashboard --disable-compressed-assets
endif

ifeq ($(BR2_PACKAGE_PERSONAD_TLS),y)
PERSONAD_DEPENDENCIES += gnutls
PERSONAD_CONF_OPTS += --enable-tls
else
PERSONAD_CONF_OPTS += --disable-tls
endif

define PERSONAD_INSTALL_INIT_SYSV
	$(INSTALL) -D -m 0755 $(PERSONAD_PKGDIR)/S50personad \
		$(TARGET_DIR)/etc/init.d/S50personad
	$(INSTALL) -D -m 0644 $(PERSONAD_PKGDIR)/personad.conf \
		$(TARGET_DIR)/etc/personad.conf
	$(INSTALL) -d -m 0755 $(TARGET_DIR)/var/lib/personad/personas
endef

$(eval $(autotools-package))
