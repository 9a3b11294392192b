# pragma version ~=0.4.3
# Test-only attacker: withdraws from a RegionMarket and tries to withdraw again
# from inside the ether transfer. It is not a project contract (never deployed by us).

interface Market:
    def register(role: uint256): nonpayable
    def deposit(): payable
    def withdraw(amount_wei: uint256): nonpayable

market: public(Market)
reentry_attempted: public(bool)
reentry_succeeded: public(bool)


@deploy
def __init__(market: address):
    self.market = Market(market)


@external
@payable
def attack(amount_wei: uint256):
    extcall self.market.register(5)
    extcall self.market.deposit(value=msg.value)
    extcall self.market.withdraw(amount_wei)


@external
@payable
def __default__():
    if not self.reentry_attempted:
        self.reentry_attempted = True
        self.reentry_succeeded = raw_call(
            self.market.address,
            concat(method_id("withdraw(uint256)"), convert(msg.value, bytes32)),
            revert_on_failure=False,
        )
