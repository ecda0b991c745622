"""``/patch report``: evidence bundles built after the ack and uploaded to the channel."""
