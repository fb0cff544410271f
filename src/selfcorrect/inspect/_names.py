"""Registry names ``selfcorrect/<name>`` whether or not Inspect can see the installed package.

Inspect prefixes an extension's components with their package's name only when it finds the
package installed (in site-packages, or editable with PEP 610 metadata). Run from a source tree
(``PYTHONPATH=src``) where a build left ``src/selfcorrect.egg-info``, that metadata hides the
install and the components would register under bare names (``cac``, ``bbq``), so
``--solver selfcorrect/cac`` and ``inspect eval selfcorrect/bbq`` would not find them. `named`
gives the decorators the prefix themselves in that case.
"""

from __future__ import annotations


def _inspect_sees_the_package() -> bool:
    try:  # Inspect's own test (a private helper; without it, trust Inspect's naming)
        from inspect_ai._util.package import get_installed_package_name
    except ImportError:  # pragma: no cover - depends on the Inspect version
        return True
    return get_installed_package_name(_inspect_sees_the_package) == "selfcorrect"


PREFIX = "" if _inspect_sees_the_package() else "selfcorrect/"


def named(name: str) -> str:
    """The name to give a decorator so that the component registers as selfcorrect/<name>."""
    return PREFIX + name
