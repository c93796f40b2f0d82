"""Published top lists: the closer ranks, stores and publishes them (adclick.close); the
API reads them back (history) and follows the topic (feed). Their wire format, both
ways, is ``wire``."""
