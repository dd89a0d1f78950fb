"""confgend: Asterisk configuration generated from the PBX database, served to the pbx-confgen client.

Kept empty on purpose: the client (`confgend.client`) imports this package on every Asterisk reload.
"""
