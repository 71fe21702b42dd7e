"""The component's entry module: componentize-py takes `WitWorld` from here."""

from siphon_sdk import export

from ibm_verify import IbmVerify

WitWorld = export(IbmVerify)
