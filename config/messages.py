"""Django's message middleware, with the message store made when a request first uses it.

`django.contrib.messages.middleware.MessageMiddleware` builds the store (`FallbackStorage`: a cookie store
with its signer, a session store) for every request, and most requests never touch it: the workbench's JSON
pair, the autosaved drafts, status polls. Here the store is a lazy object made on first use (adding a message,
a template's `messages` context, `set_level`); at the response it is updated exactly as Django's middleware
does when it was made, and skipped when it was not — an untouched store's `update` neither reads nor writes
anything (it stores only when its messages were read or new ones added), so the answers are the same.
"""

from __future__ import annotations

from django.contrib.messages import middleware
from django.contrib.messages.storage import default_storage
from django.utils.functional import SimpleLazyObject, empty


class MessageMiddleware(middleware.MessageMiddleware):
    def process_request(self, request):
        request._messages = SimpleLazyObject(lambda: default_storage(request))

    def process_response(self, request, response):
        store = getattr(request, "_messages", None)
        if isinstance(store, SimpleLazyObject) and store._wrapped is empty:
            return response  # never used by this request: nothing to store
        return super().process_response(request, response)
