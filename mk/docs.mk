# The tutorial as a site (mkdocs-material, the `docs` extra), and its checks.
#
#   make site            build the site into site/ (--strict: a broken link or anchor, or a page
#                        outside the navigation, fails the build)
#   make serve           preview the site on http://127.0.0.1:$(DOCS_PORT), rebuilt on every save
#   make docs-test       the docs' own tests: listings, diff pages, the strict build, every runnable
#                        block of the chapters, the exercises' solutions

DOCS_PORT ?= 8001

.PHONY: site serve docs-test

site: $(call EXTRA_STAMP,docs)
	$(PY) -m mkdocs build --strict --site-dir site

serve: $(call EXTRA_STAMP,docs)
	$(PY) -m mkdocs serve --strict --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-test: $(call EXTRA_STAMP,docs)
	$(PYTEST) tests/docs $(PYTEST_ARGS)
