"""Registry hosts: the host[:port] any registry: value must be, and Amazon ECR's grammar.

Pure parsing, no network and no SDK: the loader checks release.yml with it, and the ECR
adapter (pipeline/auth/cloud/ecr.py) finds a host's region and form with it.

ECR host grammar (after amazon-ecr-credential-helper's ExtractRegistry, full form):

    ACCOUNT.dkr.ecr[-fips].REGION.SUFFIX        IPv4 host
    ACCOUNT.dkr-ecr[-fips].REGION.SUFFIX        dual-stack host
    public.ecr.aws, ecr-public.aws.com          ECR Public (API only in us-east-1)

ACCOUNT is 12 digits; SUFFIX is amazonaws.com, amazonaws.com.cn (China), amazonaws.eu
(European Sovereign Cloud), on.aws / on.amazonwebservices.com.cn (dual-stack) or an ISO
partition (sc2s.sgov.gov, c2s.ic.gov, cloud.adc-e.uk, csp.hci.ic.gov). GovCloud is
REGION us-gov-*. `region:` in release.yml is only for a host that does not say (an alias).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from pipeline.model.config.keys import AWS_REGION, HOST_LABEL, MAX_HOST_LENGTH

_HOST_LABEL_RE = re.compile(rf"^{HOST_LABEL}$")


def check_registry_host(text: str) -> tuple[str, str] | None:
    """None if `text` is host[:port] (hostname, IPv4 or [IPv6]), else (problem, hint)."""
    if "://" in text:
        scheme, rest = text.split("://", 1)
        hint = f"write it without the scheme: registry: {rest.split('/', 1)[0]}"
        if scheme.lower() == "http":
            hint += " (and set insecure: true to use plain HTTP)"
        return (f"it has a scheme ({scheme}://)", hint)
    if any(c.isspace() for c in text):
        return ("it contains spaces", "write just host[:port], e.g. registry: localhost:5000")
    if "/" in text:
        host, path = text.split("/", 1)
        return ("it has a path",
                f"put the path in repository: (registry: {host}, repository: {path}/...)")
    host, port = text, None
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return ("unclosed '[' in IPv6 address", "write IPv6 addresses as [::1]:5000")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            return ("unexpected text after the IPv6 address", "write it as [::1]:5000")
        port = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return (f"'{host}' is not an IPv6 address", "write IPv6 addresses as [::1]:5000")
    else:
        if text.count(":") > 1:
            return ("too many ':'", "write IPv6 addresses in brackets, e.g. [::1]:5000")
        if ":" in text:
            host, port = text.split(":", 1)
        if not host:
            return ("the host is empty", "write host[:port], e.g. registry: localhost:5000")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                return (f"'{host}' is not an IPv4 address",
                        "write host[:port], e.g. registry: 127.0.0.1:5000")
        else:
            labels = host.split(".")
            if len(host) > MAX_HOST_LENGTH or not all(
                    _HOST_LABEL_RE.match(label) and len(label) <= 63 for label in labels):
                return (f"'{host}' is not a valid hostname",
                        "hostnames use letters, digits, '-' and '.', e.g. registry.example.com")
    if port is not None:
        if not port.isdigit() or not port.isascii():
            return (f"port '{port}' is not a number", "write host:port, e.g. localhost:5000")
        if not 1 <= int(port) <= 65535 or (len(port) > 1 and port.startswith("0")):
            return (f"port {port} is out of range (1-65535)",
                    "write host:port, e.g. localhost:5000")
    return None


# -- Amazon ECR ------------------------------------------------------------------------------

ECR_PUBLIC_HOSTS = ("public.ecr.aws", "ecr-public.aws.com")
ECR_PUBLIC_REGION = "us-east-1"
ECR_SUFFIXES = ("amazonaws.com", "amazonaws.com.cn", "amazonaws.eu", "on.aws",
                "on.amazonwebservices.com.cn", "sc2s.sgov.gov", "c2s.ic.gov", "cloud.adc-e.uk",
                "csp.hci.ic.gov")
ECR_CHINA_SUFFIXES = ("amazonaws.com.cn", "on.amazonwebservices.com.cn")
_AWS_REGION_RE = re.compile(rf"^{AWS_REGION}$")
_ECR_SUFFIX_RE = "|".join(re.escape(s) for s in sorted(ECR_SUFFIXES, key=len, reverse=True))
_ECR_HOST_RE = re.compile(
    rf"^(?P<account>[0-9]{{12}})\.(?P<service>dkr\.ecr|dkr-ecr)(?P<fips>-fips)?\."
    rf"(?P<region>{AWS_REGION})\.(?P<suffix>{_ECR_SUFFIX_RE})$")
# Loose: something that was meant to be an ECR host (for a precise message).
_ECR_LOOSE_RE = re.compile(r"^(?P<account>[^.]+)\.(?P<service>dkr[.-]ecr)(?P<fips>-fips)?\."
                           r"(?P<region>[^.]+)\.(?P<suffix>.+)$")

ECR_EXAMPLE = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


class EcrHostError(ValueError):
    """Not an ECR host: what is wrong (`problem`) and what to write instead (`hint`)."""

    def __init__(self, problem: str, hint: str):
        super().__init__(problem)
        self.problem = problem
        self.hint = hint


@dataclass(frozen=True)
class EcrHost:
    """An ECR registry host, parsed: `region` is where its tokens come from."""

    host: str
    account: str | None
    region: str
    fips: bool = False
    dualstack: bool = False
    public: bool = False

    @property
    def service(self) -> str:
        return "ecr-public" if self.public else "ecr"


def parse_ecr_host(host: str) -> EcrHost:
    """(account, region, fips, dual-stack, public) of an ECR registry host; EcrHostError if
    not one."""
    text = host.strip().lower()
    for prefix in ("https://", "http://"):
        text = text.removeprefix(prefix)
    text = text.rstrip("/")
    if text in ECR_PUBLIC_HOSTS:
        return EcrHost(host, None, ECR_PUBLIC_REGION, dualstack=text == "ecr-public.aws.com",
                       public=True)
    if ":" in text:
        raise EcrHostError(f"ECR hosts have no port ({host})",
                           f"write the host without ':PORT', e.g. {ECR_EXAMPLE}")
    m = _ECR_HOST_RE.match(text)
    if m is None:
        raise _diagnose_ecr(text)
    region, suffix = m["region"], m["suffix"]
    china_region, china_host = region.startswith("cn-"), suffix in ECR_CHINA_SUFFIXES
    if china_region != china_host:
        right = ("amazonaws.com.cn" if china_region else "amazonaws.com")
        raise EcrHostError(f"region {region} and domain {suffix} do not belong together "
                           f"(AWS China regions are cn-*, under amazonaws.com.cn)",
                           f"did you mean {m['account']}.{m['service']}{m['fips'] or ''}."
                           f"{region}.{right}?")
    if region.startswith("eusc-") != (suffix == "amazonaws.eu"):
        raise EcrHostError(f"region {region} and domain {suffix} do not belong together "
                           "(the European Sovereign Cloud is eusc-* under amazonaws.eu)",
                           "e.g. 123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu")
    return EcrHost(host, m["account"], region, fips=bool(m["fips"]),
                   dualstack=m["service"] == "dkr-ecr")


def _diagnose_ecr(text: str) -> EcrHostError:
    loose = _ECR_LOOSE_RE.match(text)
    if loose:
        if not re.fullmatch(r"[0-9]{12}", loose["account"]):
            return EcrHostError(f"the account ID '{loose['account']}' is not 12 digits",
                                f"ECR hosts start with the 12-digit AWS account ID, e.g. "
                                f"{ECR_EXAMPLE}")
        if not _AWS_REGION_RE.match(loose["region"]):
            return EcrHostError(f"'{loose['region']}' is not an AWS region name",
                                f"e.g. us-east-1, eu-central-1, cn-north-1: {ECR_EXAMPLE}")
        if loose["suffix"] not in ECR_SUFFIXES:
            return EcrHostError(f"'{loose['suffix']}' is not an ECR domain",
                                f"ECR domains: {', '.join(ECR_SUFFIXES)}")
    return EcrHostError("it does not have the form ACCOUNT.dkr.ecr.REGION.amazonaws.com",
                        f"e.g. {ECR_EXAMPLE} or public.ecr.aws; for an alias of an ECR "
                        "registry, also give region:")
