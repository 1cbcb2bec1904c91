"""Every address, port, path, api-version, audience and environment-variable name the checks
use, each defined once. Standard library only and imports nothing from the package, so any
module (and the zipapp probe) can take its values from here.

The emulator (``imds_helpers/emulator``) keeps its own constants on purpose: it is an
independent implementation of the protocol, so a wrong value here cannot hide in both.
"""
from __future__ import annotations

# --- Azure IMDS (VMs) ---------------------------------------------------------------------------
IMDS_ADDRESS = "169.254.169.254"
IMDS_BASE_URL = f"http://{IMDS_ADDRESS}"

# --- Azure Arc HIMDS (the agent's local identity service) --------------------------------------
HIMDS_HOST = "localhost"
HIMDS_PORT = 40342
HIMDS_BASE_URL = f"http://{HIMDS_HOST}:{HIMDS_PORT}"

# --- paths (the same on IMDS and HIMDS) ---------------------------------------------------------
INSTANCE_PATH = "/metadata/instance"
VERSIONS_PATH = "/metadata/versions"
TOKEN_PATH = "/metadata/identity/oauth2/token"
HIMDS_TOKEN_URL = HIMDS_BASE_URL + TOKEN_PATH     # what IDENTITY_ENDPOINT holds on an Arc server

# --- api-versions ---------------------------------------------------------------------------------
INSTANCE_API_VERSION = "2019-11-01"   # the Microsoft guide's instance request (the seed version)
TOKEN_API_VERSION = "2018-02-01"      # what MSAL / azure-identity send to IMDS for a token
ARC_API_VERSION = "2020-06-01"        # what MSAL / azure-identity send to HIMDS
COMMAND_API_VERSION = "2021-02-01"    # the instance version the hand-run curl commands show (VM)

# --- audiences --------------------------------------------------------------------------------------
MANAGEMENT = "https://management.azure.com/"
MONITOR = "https://monitor.azure.com/"   # the audience Azure Monitor Agent requests
# Short labels for the audiences above (host name -> label), e.g. for evidence keys.
AUDIENCE_LABELS = {"management.azure.com": "management", "monitor.azure.com": "monitor"}

# --- Arc key files (where HIMDS writes the challenge keys) ----------------------------------------
ARC_TOKENS_DIR_LINUX = "/var/opt/azcmagent/tokens"
ARC_TOKENS_SUBDIR_WINDOWS = ("AzureConnectedMachineAgent", "Tokens")   # under %ProgramData%
ARC_ENV_DROPIN = "/lib/systemd/system.conf.d/azcmagent.conf"          # the agent's IDENTITY_/IMDS_ENDPOINT
HIMDS_BINARY_LINUX = "/opt/azcmagent/bin/himds"
HIMDS_BINARY_WINDOWS_SUBPATH = "AzureConnectedMachineAgent\\himds.exe"   # under %ProgramFiles%

# --- environment variables --------------------------------------------------------------------------
OVERRIDE_ENV = "IMDS_RUNBOOK_ENDPOINT"   # this tool's one documented endpoint override
IDENTITY_ENDPOINT_ENV = "IDENTITY_ENDPOINT"
IMDS_ENDPOINT_ENV = "IMDS_ENDPOINT"
IDENTITY_HEADER_ENV = "IDENTITY_HEADER"
IDENTITY_SERVER_THUMBPRINT_ENV = "IDENTITY_SERVER_THUMBPRINT"
MSI_ENDPOINT_ENV = "MSI_ENDPOINT"
MSI_SECRET_ENV = "MSI_SECRET"

# The variables a check reads, as evidence: shown by value (URL credentials hidden), and the
# secret ones by presence only. Every ``*_proxy`` variable (any case) is evidence too.
ENV_SHOWN = (IDENTITY_ENDPOINT_ENV, IMDS_ENDPOINT_ENV, MSI_ENDPOINT_ENV, "AZUREPS_HOST_ENVIRONMENT",
             "AZURE_POD_IDENTITY_AUTHORITY_HOST", "KUBERNETES_SERVICE_HOST", OVERRIDE_ENV, "container",
             "REQUEST_METHOD", "ProgramFiles", "PROGRAMFILES", "ProgramData", "PROGRAMDATA")
ENV_PRESENCE = (IDENTITY_HEADER_ENV, IDENTITY_SERVER_THUMBPRINT_ENV, MSI_SECRET_ENV)

# This user's WinINet proxy settings (HKEY_CURRENT_USER), read by the live host on Windows.
WININET_KEY = r"Software\Microsoft\Windows\CurrentVersion\Internet Settings"

