"""Accounts, access keys and sub-users kept in Redis and shared by every gateway (``GATEWAY_KEYSTORE=redis``).

``codec`` seals secrets (AES-GCM), ``entries`` spells entries in Redis, ``source`` reads one key,
``cache`` and ``listen`` keep it in process and true, ``runtime`` ties them for one process, ``admin``
writes (the CLI), ``shadow`` finds ids defined both in the file and here.
"""
