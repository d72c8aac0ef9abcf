import { defineLoop } from '@skene/sdk';

export default 42;
