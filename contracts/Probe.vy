# pragma version ~=0.4.3
"""
@title Probe
@notice The smallest contract the chain backends are tested with: a counter
        with an owner, an event per change, a revert reason and a timestamp.
        The market contracts live beside it; this one carries no business logic.
"""

event Incremented:
    sender: indexed(address)
    by: uint256
    value: uint256
    at: uint256

owner: public(address)
value: public(uint256)
last_timestamp: public(uint256)


@deploy
def __init__(start: uint256):
    self.owner = msg.sender
    self.value = start


@external
def increment(by: uint256) -> uint256:
    assert by > 0, "increment must be positive"
    self.value += by
    self.last_timestamp = block.timestamp
    log Incremented(sender=msg.sender, by=by, value=self.value, at=block.timestamp)
    return self.value


@external
def reset():
    assert msg.sender == self.owner, "only the owner may reset"
    self.value = 0


@view
@external
def now() -> uint256:
    return block.timestamp
