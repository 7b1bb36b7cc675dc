#include "gateway/app/GatewayApp.h"

#include <iostream>

POCO_SERVER_MAIN(idem::app::GatewayApp)
